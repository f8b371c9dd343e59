package bootcost

import (
	"fmt"
	"slices"
	"strings"
)

// Line is one boot's counts (Usage.Since's, with a Sampler's merged in) on
// a line, in the table's order, for the progress the lab prints after each
// boot; the KVM counters only where they were read.
func Line(counts map[string]float64) string {
	var parts []string
	for _, k := range append(slices.Clone(UsageMeasures), SamplerMeasures()...) {
		if v, ok := counts[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1f", k, v))
		}
	}
	return strings.Join(parts, ", ")
}
