package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Subscribing wrongly is one line naming the flag, exit status 2, and
// nothing stored; a webhook's secret is never shown.
func TestNotifySubscribeRefusesBadInput(t *testing.T) {
	data := t.TempDir()
	env := []string{"TASKOTRON_DATA_DIR=" + data}
	secret := filepath.Join(data, "hook.secret")
	if err := os.WriteFile(secret, []byte("hunter2-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"notify", "subscribe"}, "needs one target"},
		{[]string{"notify", "subscribe", "--email", "a@example.org", "--webhook", "https://x/"}, "needs one target"},
		{[]string{"notify", "subscribe", "--email", "not an address"}, `email "not an address": not an address`},
		{[]string{"notify", "subscribe", "--webhook", "https://hooks.example.org/t"}, "--secret-file FILE"},
		{[]string{"notify", "subscribe", "--webhook", "https://hooks.example.org/t", "--secret-file", filepath.Join(data, "missing")}, "--secret-file " + filepath.Join(data, "missing")},
		{[]string{"notify", "subscribe", "--email", "a@example.org", "--secret-file", secret}, "--secret-file goes with --webhook"},
		{[]string{"notify", "subscribe", "--email", "a@example.org", "--testcase", "dist.[rpmlint"}, `testcase "dist.[rpmlint": not a glob`},
		{[]string{"notify", "subscribe", "--email", "a@example.org", "--outcome", "FAILED,,PASSED"}, `outcome ""`},
		{[]string{"notify", "unsubscribe", "x"}, `unsubscribe "x": want a subscription id`},
		{[]string{"notify", "unsubscribe", "9"}, "subscription 9: no such subscription"},
		{[]string{"notify"}, "notify needs the broker ResultsDB publishes to, in amqp.url"},
	} {
		code, stdout, stderr := runCLI(t, env, c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q, want one line with %q (stdout %q)", c.args, code, stderr, c.want, stdout)
		}
	}
	badURL := append(env, "TASKOTRON_AMQP_URL=amqp://guest:guest@127.0.0.1:1/", "TASKOTRON_NOTIFY_PUBLIC_URL=https://user:pw@notify.example.org/?x=1")
	if code, _, stderr := runCLI(t, badURL, "notify"); code == 0 || !strings.Contains(stderr, `notify.public_url "https://user:***@notify.example.org/?x=1": want http(s)://host[/path]`) ||
		strings.Contains(stderr, "pw@") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Errorf("a bad notify.public_url: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := runCLI(t, env, "notify", "list"); code != 0 || strings.Count(stdout, "\n") != 1 {
		t.Errorf("list after refused subscriptions: exit %d\n%s", code, stdout)
	}
	code, stdout, stderr := runCLI(t, env, "notify", "subscribe", "--webhook", "https://hooks.example.org/t", "--secret-file", secret, "--json")
	if code != 0 || !strings.Contains(stdout, `"webhook": "https://hooks.example.org/t"`) {
		t.Fatalf("subscribe: exit %d %s %s", code, stdout, stderr)
	}
	_, list, _ := runCLI(t, env, "notify", "list", "--json")
	_, table, _ := runCLI(t, env, "notify", "list")
	if strings.Contains(stdout+list+table, "hunter2") || !strings.Contains(table, "https://hooks.example.org/t") {
		t.Errorf("the secret is shown, or the subscription is not:\n%s%s%s", stdout, list, table)
	}
}
