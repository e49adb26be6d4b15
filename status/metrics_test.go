package status

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMetricsEscapeAndParse(t *testing.T) {
	s := New("test")
	s.AddMetrics(func() []Metric {
		return []Metric{
			{Name: "taskotron_queue_ready", Type: Gauge, Help: "Ready.\nSecond line with a \\ backslash.",
				Samples: []Sample{{Labels("queue", `we"ird\name`+"\n"), 3}, {Labels("queue", "plain"), 0}}},
			One("bad-name.total", Counter, "Sanitised.", 7),
		}
	})
	s.AddMetrics(func() []Metric {
		return []Metric{{Name: "taskotron_queue_ready", Type: Gauge, Help: "Merged into the family above.", Samples: []Sample{{Labels("queue", "other"), 1}}}}
	})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	got, err := ParseText(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if got[`taskotron_queue_ready{queue="we\"ird\\name\n"}`] != 3 || got["bad_name_total"] != 7 || got[`taskotron_queue_ready{queue="other"}`] != 1 {
		t.Errorf("parsed %v from\n%s", got, text)
	}
	if strings.Count(text, "# TYPE taskotron_queue_ready gauge") != 1 || !strings.Contains(text, `# HELP taskotron_queue_ready Ready.\nSecond line with a \\ backslash.`) {
		t.Errorf("HELP/TYPE lines:\n%s", text)
	}
}

func TestParseTextRejectsWhatScrapersReject(t *testing.T) {
	for _, bad := range []string{
		"x 1\n", // no HELP/TYPE
		"# HELP x h\n# TYPE x counter\nx{a=\"b} 1\n",
		"# HELP 1x h\n# TYPE 1x counter\n1x 1\n",
		"# HELP x h\n# TYPE x counter\nx one\n",
	} {
		if _, err := ParseText(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
