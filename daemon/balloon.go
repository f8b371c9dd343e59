package daemon

import (
	"fmt"
	"net/http"

	"ember/api"
	"ember/machine"
	"ember/virtio/balloon"
)

// statNames are the API's names of the balloon statistics, by tag.
var statNames = map[balloon.Tag]string{
	balloon.TagSwapIn: "swap_in", balloon.TagSwapOut: "swap_out",
	balloon.TagMajorFaults: "major_faults", balloon.TagMinorFaults: "minor_faults",
	balloon.TagFreeMemory: "free_memory", balloon.TagTotalMemory: "total_memory",
	balloon.TagAvailableMemory: "available_memory", balloon.TagDiskCaches: "disk_caches",
	balloon.TagHugetlbAllocations: "hugetlb_allocations", balloon.TagHugetlbFailures: "hugetlb_failures",
}

// balloonDevice returns the VM's balloon, or why there is none.
func (e *vmEntry) balloonDevice() (*balloon.Device, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.deleted:
		return nil, errGone(e.id)
	case e.m == nil || e.m.Balloon == nil:
		return nil, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("VM %s has no balloon (configure one with \"balloon\")", e.id)}
	}
	return e.m.Balloon, nil
}

// balloonView is the API's view of a balloon.
func balloonView(d *balloon.Device) api.Balloon {
	b := api.Balloon{TargetBytes: d.Target(), ActualBytes: d.Actual()}
	if s, age, ok := d.Stats(); ok {
		b.Stats, b.StatsAgeSeconds = map[string]uint64{}, age.Seconds()
		for tag, name := range statNames {
			if s.Has(tag) {
				b.Stats[name] = s.Value(tag)
			}
		}
	}
	return b
}

func (d *Daemon) serveBalloon(w http.ResponseWriter, r *http.Request) {
	e, err := d.entry(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	dev, err := e.balloonDevice()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, balloonView(dev))
}

func (d *Daemon) serveSetBalloon(w http.ResponseWriter, r *http.Request) {
	e, err := d.entry(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	var u api.BalloonUpdate
	if err := decode(w, r, &u, false); err != nil {
		writeError(w, err)
		return
	}
	var target uint64
	if u.Target != "0" {
		if target, err = machine.ParseSize(u.Target); err != nil {
			writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidConfig, Message: "target: " + err.Error()})
			return
		}
	}
	dev, err := e.balloonDevice()
	if err != nil {
		writeError(w, err)
		return
	}
	e.mu.Lock()
	ram := e.prep.HV.MemorySize
	e.mu.Unlock()
	if target >= ram {
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidConfig,
			Message: fmt.Sprintf("target %s is not less than the guest's %d bytes of RAM", u.Target, ram)})
		return
	}
	if err := dev.SetTarget(target); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, balloonView(dev))
}
