package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"
)

// Row is one line of a result table: one method measured in one
// scenario, with every sample kept.
type Row struct {
	Scenario string    `json:"scenario"`
	Name     string    `json:"name"`
	Column   string    `json:"column"` // tables with several measurements per method
	Unit     string    `json:"unit"`   // "s", "KiB"
	Samples  []float64 `json:"samples"`
	Cmd      string    `json:"cmd,omitempty"`     // symbolic: $LAYOUT, $MNT, … (see Result.Paths)
	Check    string    `json:"check,omitempty"`   // what the command saw, e.g. entries or bytes
	Note     string    `json:"note,omitempty"`    // e.g. "did not finish in 60 s"
	Err      string    `json:"error,omitempty"`   // the run failed
	Baseline bool      `json:"baseline"`          // other rows' ratios are against this one
	Versus   string    `json:"versus,omitempty"`  // the Name of the baseline row (same scenario and column)
	Target   string    `json:"target,omitempty"`  // the target for this row, if any
	Planned  int       `json:"planned,omitempty"` // repetitions planned (the time budget may cut them)
}

// Median of the samples (NaN without samples).
func (r *Row) Median() float64 { return median(r.Samples) }

// Range is the smallest and the largest sample.
func (r *Row) Range() (lo, hi float64) {
	if len(r.Samples) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(r.Samples), slices.Max(r.Samples)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// step is one timed command of a trial.
type step struct {
	row   *Row
	run   func(ctx context.Context) (check string, err error)
	limit time.Duration // 0: the run's default limit
}

// trial is what one repetition does: an untimed setup, timed steps one
// after another (a cold pass, then a warm one), an untimed teardown.
type trial struct {
	name     string
	setup    func(ctx context.Context) error
	steps    []step
	teardown func(ctx context.Context) error
	fast     bool // always repeat Reps times, even if slow

	reps   int // decided after the first repetition
	done   int
	failed bool
}

// runner runs trials and keeps the rows.
type runner struct {
	cfg   *Config
	log   *slog.Logger
	rows  []*Row
	until time.Time // the current scenario's share of the budget ends; zero: no budget
}

func (r *runner) row(scenario, name, unit, cmd string) *Row {
	col := "time"
	if unit != "s" {
		col = "size"
	}
	row := &Row{Scenario: scenario, Name: name, Column: col, Unit: unit, Cmd: cmd}
	r.rows = append(r.rows, row)
	return row
}

// rounds runs the trials round-robin, one repetition of each in turn,
// so that a slow period of a shared machine hits every method alike.
// A trial repeats Reps times, or RepsSlow times if its first
// repetition took longer than Slow. A failed step ends its trial; the
// error is kept in the step's row.
//
// Once the scenario's share of the time budget (r.until) is spent, no
// new round starts: rows then have fewer samples than planned, and the
// report says so.
func (r *runner) rounds(ctx context.Context, trials ...*trial) {
	for round := 0; ; round++ {
		if round > 0 && !r.until.IsZero() && time.Now().After(r.until) {
			for _, t := range trials {
				if !t.failed && t.done < t.reps {
					r.log.Warn("time budget spent: fewer repetitions", "trial", t.name, "done", t.done, "planned", t.reps)
				}
			}
			return
		}
		ran := false
		for _, t := range trials {
			if t.failed || (t.reps > 0 && t.done >= t.reps) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return
			}
			ran = true
			elapsed := r.once(ctx, t)
			t.done++
			if t.reps == 0 {
				t.reps = r.cfg.Reps
				if !t.fast && elapsed > r.cfg.Slow {
					t.reps = r.cfg.RepsSlow
				}
				for _, s := range t.steps {
					s.row.Planned = max(s.row.Planned, t.reps)
				}
			}
		}
		if !ran {
			return
		}
	}
}

// once runs one repetition of t and returns the time its steps took.
func (r *runner) once(ctx context.Context, t *trial) time.Duration {
	var total time.Duration
	defer func() {
		if t.teardown != nil {
			if err := t.teardown(context.WithoutCancel(ctx)); err != nil {
				r.log.Warn("teardown", "trial", t.name, "err", err)
			}
		}
	}()
	if t.setup != nil {
		if err := t.setup(ctx); err != nil {
			r.log.Warn("setup", "trial", t.name, "err", err)
			for _, s := range t.steps {
				if s.row.Err == "" {
					s.row.Err = "setup: " + err.Error()
				}
			}
			t.failed = true
			return 0
		}
	}
	for _, s := range t.steps {
		limit := s.limit
		if limit == 0 {
			limit = r.cfg.Limit
		}
		sctx, cancel := context.WithTimeout(ctx, limit)
		start := time.Now()
		check, err := s.run(sctx)
		d := time.Since(start)
		cancel()
		total += d
		switch {
		case err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			s.row.Note = fmt.Sprintf("did not finish in %s", limit)
			r.log.Info("time limit", "row", s.row.Name, "limit", limit)
			t.failed = true
			return total
		case err != nil:
			s.row.Err = err.Error()
			r.log.Warn("step", "row", s.row.Name, "err", err)
			t.failed = true
			return total
		}
		s.row.Samples = append(s.row.Samples, d.Seconds())
		if check != "" {
			s.row.Check = check
		}
		r.log.Info("sample", "scenario", s.row.Scenario, "row", s.row.Name, "seconds", fmt.Sprintf("%.3f", d.Seconds()), "check", check)
	}
	return total
}

// value records a measured quantity (not a time) in a row.
func (r *runner) value(row *Row, v float64, err error) {
	if err != nil {
		row.Err = err.Error()
		r.log.Warn("value", "row", row.Name, "err", err)
		return
	}
	row.Samples = append(row.Samples, v)
}
