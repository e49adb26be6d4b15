package status

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
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

// WriteText writes the metrics in the Prometheus text format: a HELP and
// a TYPE line per family, then its samples. Names that are not valid
// metric or label names have their wrong characters turned into '_';
// families with the same name are merged, so the name appears once.
func WriteText(w io.Writer, metrics []Metric) error {
	bw := bufio.NewWriter(w)
	order := []string{}
	byName := map[string]*Metric{}
	for _, m := range metrics {
		name := sanitize(m.Name, true)
		if prev, ok := byName[name]; ok {
			prev.Samples = append(prev.Samples, m.Samples...)
			continue
		}
		m.Name = name
		m.Samples = append([]Sample(nil), m.Samples...)
		byName[name] = &m
		order = append(order, name)
	}
	for _, name := range order {
		m := byName[name]
		typ := m.Type
		if typ != Counter && typ != Gauge {
			typ = "untyped"
		}
		fmt.Fprintf(bw, "# HELP %s %s\n", name, escapeHelp(m.Help))
		fmt.Fprintf(bw, "# TYPE %s %s\n", name, typ)
		for _, s := range m.Samples {
			bw.WriteString(name)
			if len(s.Labels) > 0 {
				bw.WriteByte('{')
				for i, l := range s.Labels {
					if i > 0 {
						bw.WriteByte(',')
					}
					fmt.Fprintf(bw, "%s=\"%s\"", sanitize(l.Name, false), escapeLabel(l.Value))
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(formatValue(s.Value))
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// sanitize makes a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or label
// name (the same without ':').
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

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
