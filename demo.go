// Package taskotron holds what the binary carries of its repository, so that
// `taskotron up` needs no file beside it: the example tasks (tasks/) and the
// fixtures the demo runs them on (fixtures/: messages, Koji, Bodhi and
// dist-git data, small RPMs).
package taskotron

import "embed"

// Demo is tasks/ and fixtures/ as the binary was built with them
// (pipeline.UnpackDemo writes them out).
//
//go:embed tasks fixtures
var Demo embed.FS
