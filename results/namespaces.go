package results

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Namespaces is the result namespace allowlist (namespaces.yaml, reference
// §2.8): any task may post into a safe namespace; a whitelisted namespace
// takes results only from tasks whose git origin starts with one of its
// prefixes.
type Namespaces struct {
	Safe      []string            `yaml:"namespaces_safe"`
	Whitelist map[string][]string `yaml:"namespaces_whitelist"`
}

// LoadNamespaces reads a namespaces.yaml file.
func LoadNamespaces(path string) (*Namespaces, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("namespaces file: %w", err)
	}
	var n Namespaces
	if err := yaml.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("namespaces file %s: %s", path, oneLine(err.Error()))
	}
	return &n, nil
}

// ErrNamespace marks a checkname that may not be posted.
var ErrNamespace = errors.New("namespace not allowed")

// Check tells whether a task whose repo has the given origin URL may post
// results named checkname.
func (n *Namespaces) Check(checkname, origin string) error {
	for _, ns := range n.Safe {
		if strings.HasPrefix(checkname, ns+".") {
			return nil
		}
	}
	for ns, prefixes := range n.Whitelist {
		if !strings.HasPrefix(checkname, ns+".") {
			continue
		}
		for _, p := range prefixes {
			if p != "" && strings.HasPrefix(origin, p) {
				return nil
			}
		}
		return fmt.Errorf("checkname %q: this repo (origin %q) is not allowed to post results into the %q namespace: %w", checkname, origin, ns, ErrNamespace)
	}
	return fmt.Errorf("checkname %q: no namespace for it exists (allowed: %s): %w", checkname, strings.Join(n.names(), ", "), ErrNamespace)
}

func (n *Namespaces) names() []string {
	var out []string
	out = append(out, n.Safe...)
	for ns := range n.Whitelist {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}
