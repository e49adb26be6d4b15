package status

import (
	"strings"
)

// ContentType is the Prometheus text exposition format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Metric types.
const (
	Counter = "counter"
	Gauge   = "gauge"
)

// Metric is one metric family: a name, its help and type, and a sample per
// label set.
type Metric struct {
	Name    string
	Help    string
	Type    string
	Samples []Sample
}

// Sample is one value of a metric with its labels, in order.
type Sample struct {
	Labels []Label
	Value  float64
}

// Label is one name="value" pair.
type Label struct{ Name, Value string }

// Labels pairs up names and values: Labels("queue", q, "kind", k).
func Labels(kv ...string) []Label {
	out := make([]Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Label{kv[i], kv[i+1]})
	}
	return out
}

// One is a metric with a single unlabelled sample.
func One(name, typ, help string, v float64) Metric {
	return Metric{Name: name, Help: help, Type: typ, Samples: []Sample{{Value: v}}}
}

func sanitize(name string, metric bool) string {
	if name == "" {
		return "_"
	}
	b := []byte(name)
	for i, c := range b {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (c == ':' && metric) || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
