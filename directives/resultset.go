package directives

import (
	"errors"
	"fmt"
	"os"

	"github.com/taskotron-go/taskotron/contract"
	"github.com/taskotron-go/taskotron/results"
)

// MemoryResults is how many results a run holds in memory; past it they go
// to the run's spill file (Env.ResultsSpill), so that a task printing
// millions of results is read in constant memory.
const MemoryResults = 1000

// resultSet is a run's results: in memory, or once past MemoryResults in
// the spill file.
type resultSet struct {
	held []contract.Result
	// file and details are the spill files: the results, and their details
	// (detailsSpill).
	file, details *os.File
	w             *results.ResultWriter
	err           error // the spill failed: the run's results are lost
	// artifacts tells whether any spilled result names an artifact.
	artifacts bool
}

// AddResult hands one result to the reporter at the end of the run. Its
// error means the result could not be kept (the spill file failed).
func (e *Env) AddResult(r contract.Result) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &e.results
	if s.err != nil {
		return s.err
	}
	if s.w == nil {
		s.held = append(s.held, r)
		if len(s.held) <= MemoryResults || e.ResultsSpill == "" {
			return nil
		}
		if s.err = e.spill(); s.err != nil {
			return s.err
		}
		return nil
	}
	s.artifacts = s.artifacts || r.Artifact != ""
	if s.err = s.w.Write(r); s.err != nil {
		s.err = fmt.Errorf("results spill: %w", s.err)
	}
	return s.err
}

// spill moves the held results to the spill file, where the next go.
func (e *Env) spill() error {
	s := &e.results
	f, err := os.OpenFile(e.ResultsSpill, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("results spill: %w", err)
	}
	d, err := os.OpenFile(detailsSpill(e.ResultsSpill), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		f.Close()
		return fmt.Errorf("results spill: %w", err)
	}
	s.file, s.details, s.w = f, d, results.NewResultWriter(f, d)
	for _, r := range s.held {
		s.artifacts = s.artifacts || r.Artifact != ""
		if err := s.w.Write(r); err != nil {
			return fmt.Errorf("results spill: %w", err)
		}
	}
	s.held = nil
	if e.Log != nil {
		e.Log.Info("results go to the spill file from here on", "held", MemoryResults, "file", e.ResultsSpill)
	}
	return nil
}

// Results returns the results held in memory (none once spilled).
func (e *Env) Results() []contract.Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]contract.Result(nil), e.results.held...)
}

// TakeResults puts the run's results in exec: in memory (exec.Results), or
// the spill file, closed (exec.ResultsFile, exec.ResultCount). Its error
// means the spill failed and the results are lost: exec then has none.
func (e *Env) TakeResults(exec *contract.Execution) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &e.results
	if s.w == nil {
		exec.Results = append([]contract.Result(nil), s.held...)
		return nil
	}
	err := s.err
	if ferr := s.w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("results spill: %w", ferr)
	}
	if cerr := errors.Join(s.file.Close(), s.details.Close()); err == nil && cerr != nil {
		err = fmt.Errorf("results spill: %w", cerr)
	}
	exec.Results = []contract.Result{}
	if err != nil {
		return err
	}
	exec.ResultsFile, exec.DetailsFile, exec.ResultCount = e.ResultsSpill, detailsSpill(e.ResultsSpill), s.w.Count()
	return nil
}

// detailsSpill is where the details of the results spilled to spill go.
func detailsSpill(spill string) string { return spill + ".details" }

// SpilledArtifacts tells whether any result in the spill file names an
// artifact (which the runner must then check, result by result).
func (e *Env) SpilledArtifacts() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.results.artifacts
}
