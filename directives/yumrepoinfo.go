package directives

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/taskotron-go/taskotron/capped"
	"github.com/taskotron-go/taskotron/koji"
)

func init() { Register("yumrepoinfo", Func(runYumRepoInfo)) }

// runYumRepoInfo answers {tag: {arch: url}, parent_tag: {…}, …} for
// koji_tag and its parents from the yumrepoinfo.conf file (reference
// §2.4). A -pending suffix is dropped; rawhide, or rawhide's own tag, names
// the rawhide section.
func runYumRepoInfo(ctx context.Context, params map[string]any, env *Env) (any, error) {
	p := fparams{directive: "yumrepoinfo", m: params}
	tag, err := p.str("koji_tag", true)
	if err != nil {
		return nil, err
	}
	arches, _, err := p.list("arch")
	if err != nil {
		return nil, err
	}
	if len(arches) == 0 {
		return nil, p.errorf("parameter arch is required")
	}
	file, err := p.str("file", false)
	if err != nil {
		return nil, err
	}
	if file == "" {
		file = env.Config.Koji.YumRepoInfo
	}
	raw, err := capped.ReadFile(file, 1<<20)
	if err != nil {
		return nil, p.errorf("yumrepoinfo file: %w", err)
	}
	conf, err := ParseYumRepoInfo(raw, file)
	if err != nil {
		return nil, p.errorf("%w", err)
	}
	tag = strings.TrimSuffix(tag, "-pending")
	section := conf.find(tag)
	if section == "" {
		return nil, p.errorf("koji_tag %s: no such repo in %s", tag, file)
	}
	out := map[string]any{}
	seen := map[string]bool{}
	for section != "" && !seen[section] {
		seen[section] = true
		urls := map[string]any{}
		for _, a := range arches {
			if a == "noarch" || a == "src" {
				continue
			}
			// Repos are published per base arch: i686 packages live in i386.
			base := a
			for b, list := range map[string][]string{"i386": koji.ExpandArch("i386"), "armhfp": koji.ExpandArch("armhfp")} {
				for _, x := range list {
					if x == a {
						base = b
					}
				}
			}
			u, err := conf.get(section, "url", base)
			if err != nil {
				return nil, p.errorf("%w", err)
			}
			urls[a] = u
		}
		out[section] = urls
		section, _ = conf.get(section, "parent", "")
	}
	return out, nil
}

// YumRepoInfo is a parsed yumrepoinfo.conf.
type YumRepoInfo struct {
	file     string
	defaults map[string]string
	sections map[string]map[string]string
	order    []string
}

var interpolation = regexp.MustCompile(`%\(([a-zA-Z0-9_]+)\)s`)

// ParseYumRepoInfo reads the INI format of yumrepoinfo.conf; file names it
// in errors.
func ParseYumRepoInfo(raw []byte, file string) (*YumRepoInfo, error) {
	c := &YumRepoInfo{file: file, defaults: map[string]string{}, sections: map[string]map[string]string{}}
	var cur map[string]string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") || len(line) < 3 {
				return nil, fmt.Errorf("%s:%d: bad section header %q", file, n, line)
			}
			name := strings.TrimSpace(line[1 : len(line)-1])
			if name == "DEFAULT" {
				cur = c.defaults
				continue
			}
			if _, dup := c.sections[name]; dup {
				return nil, fmt.Errorf("%s:%d: section %s twice", file, n, name)
			}
			cur = map[string]string{}
			c.sections[name] = cur
			c.order = append(c.order, name)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			k, v, ok = strings.Cut(line, ":")
		}
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%s:%d: want key = value, got %q", file, n, line)
		}
		if cur == nil {
			return nil, fmt.Errorf("%s:%d: key outside any section", file, n)
		}
		cur[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return c, sc.Err()
}

// find maps a tag to its section: the section itself, or rawhide when the
// tag is "rawhide" or rawhide's tag.
func (c *YumRepoInfo) find(tag string) string {
	if _, ok := c.sections[tag]; ok {
		return tag
	}
	for _, name := range c.order {
		if t := c.sections[name]["tag"]; t != "" && t == tag && c.sections[name]["release_status"] == "rawhide" {
			return name
		}
	}
	return ""
}

// get reads key of section with %(name)s interpolation from the section,
// DEFAULT and arch.
func (c *YumRepoInfo) get(section, key, arch string) (string, error) {
	lookup := func(k string) (string, bool) {
		if k == "arch" && arch != "" {
			return arch, true
		}
		if v, ok := c.sections[section][k]; ok {
			return v, true
		}
		v, ok := c.defaults[k]
		return v, ok
	}
	v, ok := lookup(key)
	if !ok {
		return "", nil
	}
	for depth := 0; strings.Contains(v, "%("); depth++ {
		if depth > 10 {
			return "", fmt.Errorf("%s: [%s] %s: interpolation too deep", c.file, section, key)
		}
		var missing string
		v = interpolation.ReplaceAllStringFunc(v, func(m string) string {
			name := interpolation.FindStringSubmatch(m)[1]
			r, ok := lookup(strings.ToLower(name))
			if !ok {
				missing = name
			}
			return r
		})
		if missing != "" {
			return "", fmt.Errorf("%s: [%s] %s: %%(%s)s is not defined", c.file, section, key, missing)
		}
	}
	return v, nil
}
