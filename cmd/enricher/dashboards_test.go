package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

// scrapeRun runs `enricher run` on a small stack until every event is
// published and returns the sample names and label names of its /metrics.
func scrapeRun(t *testing.T) (names, labels map[string]bool) {
	t.Helper()
	st := newRunStack(t, 120, 30)
	httpAddr := freeAddr(t)
	st.env(t, httpAddr)
	t.Setenv("ENRICHER_LOG_LEVEL", "warn")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb testsupport.SyncBuffer
	go func() { done <- run(ctx, []string{"enricher", "run"}, &out, &errb) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run: exit %d: %s", code, errb.String())
		}
	}()
	var body string
	testsupport.WaitFor(t, 60*time.Second, "every event published and committed", func() bool {
		if topicEnd(t, st.broker.Addr(), defaultOutputTopic)+topicEnd(t, st.broker.Addr(), defaultDLQTopic) < st.valid+st.invalid {
			return false
		}
		code, b, err := httpGet("http://" + httpAddr + "/metrics")
		body = b
		return err == nil && code == 200 && strings.Contains(b, "enricher_consumer_committed_offset{")
	})
	names, labels = map[string]bool{}, map[string]bool{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, line := range strings.Split(body, "\n") {
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		names[m[1]] = true
		for _, l := range label.FindAllStringSubmatch(m[3], -1) {
			labels[l[1]] = true
		}
	}
	return names, labels
}

// promQueries returns the PromQL expressions of the alert rules and of the
// dashboard panels, by where they come from.
func promQueries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(repoFile(t, "deploy/prometheus/enricher.rules.yml"), &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(repoFile(t, "deploy/grafana/dashboards/enricher.json"), &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			out["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	return out
}

// TestDashboardAndAlertsUseExportedMetrics: every metric the alert rules
// and the dashboard query is one /metrics exports (with the exporter's
// _total, _seconds and unit suffixes), and so is every label they group
// or select by.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the processor")
	}
	queries := promQueries(t)
	if len(queries) < 12 {
		t.Fatalf("found %d queries in the rules and the dashboard; the files are not read as expected", len(queries))
	}
	names, labels := scrapeRun(t)
	for _, l := range []string{"instance", "job", "le"} { // added by Prometheus, or histogram buckets
		labels[l] = true
	}
	metric := regexp.MustCompile(`\b(?:enricher|tencentchat)_[a-z0-9_]+\b`)
	grouping := regexp.MustCompile(`\b(?:by|without|ignoring|on|group_left|group_right)\s*\(([^)]*)\)`)
	selector := regexp.MustCompile(`\{([^}]*)\}`)
	matcher := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	for where, q := range queries {
		// Metric names, outside label matchers and grouping clauses.
		used := metric.FindAllString(grouping.ReplaceAllString(selector.ReplaceAllString(q, "{}"), "by ()"), -1)
		if len(used) == 0 {
			t.Errorf("%s: %q queries no enricher metric", where, q)
		}
		for _, m := range used {
			if !names[m] {
				t.Errorf("%s: %s is not exported by /metrics", where, m)
			}
		}
		var ls []string
		for _, g := range grouping.FindAllStringSubmatch(q, -1) {
			ls = append(ls, strings.Split(g[1], ",")...)
		}
		for _, s := range selector.FindAllStringSubmatch(q, -1) {
			for _, m := range matcher.FindAllStringSubmatch(s[1], -1) {
				ls = append(ls, m[1])
			}
		}
		for _, l := range ls {
			if l = strings.TrimSpace(l); l != "" && !labels[l] {
				t.Errorf("%s: label %q is on no exported metric", where, l)
			}
		}
	}
}
