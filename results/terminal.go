package results

import (
	"github.com/taskotron-go/taskotron/contract"
)

// Broken marks an execution NOT_OK for the reason given, with outcome
// (ABORTED or CRASHED) as its verdict. When the run handed over no result it
// gets one, for its item and check, so that a broken run is never a silent
// gap in ResultsDB.
func Broken(exec *contract.Execution, check, namespace string, outcome contract.Outcome, reason string) {
	exec.ExecutionStatus = contract.ExecutionNotOK
	exec.Status = oneLine(reason)
	exec.ExitCode = 1
	exec.Outcome = outcome
	if namespace != "" {
		exec.Namespace = namespace
	}
	if exec.Results == nil {
		exec.Results = []contract.Result{}
	}
	if exec.NumResults() > 0 {
		return
	}
	if check == "" {
		check = exec.TaskName
	}
	if check == "" {
		check = "unknown-task"
	}
	res := contract.Result{Item: exec.Item, Type: exec.ItemType, CheckName: Namespaced(namespace, check), Outcome: outcome, Note: truncate(exec.Status, 500)}
	if exec.Arch != "" {
		res.Arch = contract.OneArch(exec.Arch)
	}
	if res.Item == "" {
		res.Item = "unknown"
	}
	if res.Type == "" {
		res.Type = "unknown"
	}
	exec.Results = []contract.Result{res}
}

// Crashed is the execution of a job that could not be run at all.
func Crashed(job contract.Job, reason string) contract.Execution {
	exec := contract.Execution{UUID: job.UUID, Item: job.Item, ItemType: job.ItemType, TaskName: job.TaskName, Arch: job.Arch}
	Broken(&exec, job.TaskName, "", contract.Crashed, reason)
	return exec
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
