package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// damonKdamonds is where the DAMON sysfs interface lists its monitoring
// threads (Linux Documentation/admin-guide/mm/damon/usage.rst).
const damonKdamonds = "/sys/kernel/mm/damon/admin/kdamonds"

// reclaimer is a kernel thread that reclaims memory proactively.
type reclaimer struct {
	State string // its sysfs state file: "on" or "off"
	What  string // for the report
}

// proactiveReclaim finds the kdamonds under dir (damonKdamonds) that are
// on and page out.
//
// Some machines (VM guests returning memory to their host, above all)
// run a DAMON scheme that pages out page cache nobody has touched for a
// while, however much memory is free. It takes pages from both sides of
// a comparison at random, while rows such as "read all, 2nd pass"
// promise warm kernel caches, and its own work competes for the CPUs.
// Dropping the caches puts the machine in a known state before a cold
// run; pausing the reclaim keeps it there during a warm one.
func proactiveReclaim(dir string) []reclaimer {
	dirs, _ := filepath.Glob(filepath.Join(dir, "[0-9]*"))
	var rs []reclaimer
	for _, d := range dirs {
		state := filepath.Join(d, "state")
		if readTrim(state) != "on" {
			continue
		}
		if what, ok := pageoutScheme(d); ok {
			rs = append(rs, reclaimer{State: state, What: fmt.Sprintf("DAMON kdamond %s, which %s", filepath.Base(d), what)})
		}
	}
	return rs
}

// pauseReclaim stops the reclaimers and returns those it stopped and a
// function that starts them again. Writing "on" restarts a kdamond
// with the same parameters: they stay in sysfs while it is off.
func pauseReclaim(rs []reclaimer) (paused []reclaimer, resume func() error) {
	for _, r := range rs {
		if os.WriteFile(r.State, []byte("off"), 0o644) == nil {
			paused = append(paused, r)
		}
	}
	return paused, func() error {
		var errs []error
		for _, r := range paused {
			if err := os.WriteFile(r.State, []byte("on"), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restart %s: %w", r.State, err))
			}
		}
		return errors.Join(errs...)
	}
}

// pageoutScheme reports whether a kdamond has a scheme that pages out,
// and describes the first one: "pages out memory idle for 1m0s".
func pageoutScheme(kdamond string) (string, bool) {
	schemes, _ := filepath.Glob(filepath.Join(kdamond, "contexts", "[0-9]*", "schemes", "[0-9]*"))
	for _, s := range schemes {
		if readTrim(filepath.Join(s, "action")) != "pageout" {
			continue
		}
		what := "pages out memory idle"
		age, err1 := strconv.ParseInt(readTrim(filepath.Join(s, "access_pattern", "age", "min")), 10, 64)
		aggr, err2 := strconv.ParseInt(readTrim(filepath.Join(s, "..", "..", "monitoring_attrs", "intervals", "aggr_us")), 10, 64)
		if err1 == nil && err2 == nil && age > 0 {
			what += " for " + (time.Duration(age*aggr) * time.Microsecond).String()
		}
		return what, true
	}
	return "", false
}

func readTrim(name string) string {
	b, _ := os.ReadFile(name)
	return strings.TrimSpace(string(b))
}
