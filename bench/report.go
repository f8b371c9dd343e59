package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is one run of the harness: what ran where, and the measurements.
type Report struct {
	Command string    `json:"command"`
	Machine Machine   `json:"machine"`
	Started time.Time `json:"started"`
	Short   bool      `json:"short"`
	Params  Params    `json:"params"`
	Rows    []Row     `json:"rows"`
}

// Machine describes the host a report was measured on.
type Machine struct {
	NProc   int    `json:"nproc"`
	CPU     string `json:"cpu"`
	Kernel  string `json:"kernel"`
	Backend string `json:"kvm_backend"`
	QEMU    string `json:"qemu,omitempty"`
}

// Row is one measurement: a subject (ember, the C baseline, QEMU) in a group
// (what is measured). Value is nil for a row that could not be measured for a
// reason that is not a failure (Note says why, e.g. "n/a: not yet implemented").
// VsC and VsQEMU are Value divided by the C baseline's and QEMU's value in the
// same group.
type Row struct {
	Group   string   `json:"group"`
	Subject string   `json:"subject"`
	Value   *float64 `json:"value"`
	Unit    string   `json:"unit"`
	VsC     *float64 `json:"vs_c,omitempty"`
	VsQEMU  *float64 `json:"vs_qemu,omitempty"`
	Note    string   `json:"note,omitempty"`
}

// Subjects, as they appear in rows; ratios are taken against the first two.
const (
	SubjectC    = "C raw ioctl"
	SubjectQEMU = "QEMU"
)

// num turns a float into a JSON-safe pointer: nil for NaN or Inf.
func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// Add appends a row with a value.
func (r *Report) Add(group, subject string, value float64, unit, note string) {
	r.Rows = append(r.Rows, Row{Group: group, Subject: subject, Value: num(value), Unit: unit, Note: note})
}

// AddNA appends a row that has no value, with the reason.
func (r *Report) AddNA(group, subject, unit, why string) {
	r.Rows = append(r.Rows, Row{Group: group, Subject: subject, Unit: unit, Note: why})
}

// Value returns the value of the row (group, subject), NaN if there is none.
func (r *Report) Value(group, subject string) float64 {
	for _, row := range r.Rows {
		if row.Group == group && row.Subject == subject && row.Value != nil {
			return *row.Value
		}
	}
	return math.NaN()
}

// AddPaired appends a row whose ratios were measured in pairs (the median
// of per-repetition ratios, PairedRatios): ComputeRatios keeps them. A NaN
// ratio is left for ComputeRatios to fill.
func (r *Report) AddPaired(group, subject string, value float64, unit, note string, vsC, vsQEMU float64) {
	r.Rows = append(r.Rows, Row{Group: group, Subject: subject, Value: num(value), Unit: unit, Note: note,
		VsC: num(vsC), VsQEMU: num(vsQEMU)})
}

// ComputeRatios fills VsC and VsQEMU of every row from the C baseline's and
// QEMU's rows of its group (a baseline's ratio to itself is left out), where
// AddPaired did not set them.
func (r *Report) ComputeRatios() {
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.Value == nil {
			continue
		}
		if row.Subject != SubjectC && row.VsC == nil {
			row.VsC = num(Ratio(*row.Value, r.Value(row.Group, SubjectC)))
		}
		if row.Subject != SubjectQEMU && row.VsQEMU == nil {
			row.VsQEMU = num(Ratio(*row.Value, r.Value(row.Group, SubjectQEMU)))
		}
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteJSONFile writes the report as JSON to the file path.
func (r *Report) WriteJSONFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	return f.Close()
}

// WriteTable writes the report as an aligned text table, a group per block.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d cores, %s, kernel %s, %s\n", m.NProc, m.CPU, m.Kernel, m.Backend)
	if m.QEMU != "" {
		fmt.Fprintf(w, "qemu:    %s\n", m.QEMU)
	}
	fmt.Fprintf(w, "params:  %s\n\n", r.Params)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tsubject\tvalue\t× C\t× QEMU\tnote")
	last := ""
	for _, row := range r.Rows {
		g := row.Group
		if g == last {
			g = ""
		}
		last = row.Group
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g, row.Subject, formatValue(row.Value, row.Unit),
			formatRatio(row.VsC), formatRatio(row.VsQEMU), row.Note)
	}
	return tw.Flush()
}

func formatValue(v *float64, unit string) string {
	if v == nil {
		return "—"
	}
	x := *v
	switch {
	case x == math.Trunc(x) && math.Abs(x) < 1e9:
		return strings.TrimSpace(fmt.Sprintf("%.0f %s", x, unit))
	case math.Abs(x) >= 100:
		return strings.TrimSpace(fmt.Sprintf("%.0f %s", x, unit))
	case math.Abs(x) >= 10:
		return strings.TrimSpace(fmt.Sprintf("%.1f %s", x, unit))
	}
	return strings.TrimSpace(fmt.Sprintf("%.2f %s", x, unit))
}

func formatRatio(v *float64) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("%.2f", *v)
}
