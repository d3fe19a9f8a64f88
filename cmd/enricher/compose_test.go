package main

import (
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
	"go.yaml.in/yaml/v3"
)

// The compose file cannot be run here; these tests keep it honest by
// checking it against the command's real flags.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]any    `yaml:"depends_on"`
}

func repoFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(repoFile(t, "docker-compose.yml"), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// commandEnv returns the environment variables a subcommand reads: its
// flags' fallbacks plus the secrets read directly.
func commandEnv(cmd *cli.Command) map[string]bool {
	envs := map[string]bool{}
	names := map[string]bool{}
	for _, f := range cmd.Flags {
		if ef, ok := f.(interface{ GetEnvVars() []string }); ok {
			for _, e := range ef.GetEnvVars() {
				envs[e] = true
			}
		}
		for _, n := range f.Names() {
			names[n] = true
		}
	}
	if names["im-secret-key-file"] {
		envs[envSecretKey] = true
	}
	if names["kafka-sasl-password-file"] {
		envs[envSASLPassword] = true
	}
	if names["redis-password-file"] {
		envs[envRedisPassword] = true
	}
	if cmd.Name == "simulator" {
		envs[simulatorSecretEnv] = true
	}
	return envs
}

// publishedPort returns the container port of a "host:container" mapping.
func publishedPorts(s composeService) []string {
	var out []string
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		out = append(out, strings.TrimSuffix(parts[len(parts)-1], "/tcp"))
	}
	return out
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	app := newApp()

	for _, name := range []string{"kafka", "topics", "redis", "jaeger", "simulator", "generator", "enricher", "enricher-2", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}
	if img := c.Services["kafka"].Image; !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("kafka image %q, want the official apache/kafka", img)
	}
	if img := c.Services["jaeger"].Image; !strings.HasPrefix(img, "jaegertracing/all-in-one:") {
		t.Errorf("jaeger image %q, want jaegertracing/all-in-one", img)
	}

	// Every service built from this repository runs a real subcommand and
	// sets only environment variables that subcommand reads.
	for name, s := range c.Services {
		if s.Build == nil {
			continue
		}
		if len(s.Command) == 0 {
			t.Errorf("%s: no command", name)
			continue
		}
		sub := app.Command(s.Command[0])
		if sub == nil {
			t.Errorf("%s: command %q is not an enricher subcommand", name, s.Command[0])
			continue
		}
		envs := commandEnv(sub)
		for k := range s.Environment {
			if strings.HasPrefix(k, "OTEL_") { // read by the OpenTelemetry SDK
				continue
			}
			if !envs[k] {
				t.Errorf("%s: %s is not read by `enricher %s`", name, k, sub.Name)
			}
		}
		for _, arg := range s.Command[1:] {
			if flag, ok := strings.CutPrefix(arg, "--"); ok {
				flag, _, _ = strings.Cut(flag, "=")
				if !slices.ContainsFunc(sub.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), flag) }) {
					t.Errorf("%s: --%s is not a flag of `enricher %s`", name, flag, sub.Name)
				}
			}
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s depends on unknown service %q", name, dep)
			}
		}
	}
}

func TestComposeWiring(t *testing.T) {
	c := loadCompose(t)
	kafka, sim, enr, jaeger := c.Services["kafka"], c.Services["simulator"], c.Services["enricher"], c.Services["jaeger"]

	// The processor and the generator reach Kafka on an advertised listener.
	advertised := map[string]bool{}
	for _, l := range strings.Split(kafka.Environment["KAFKA_ADVERTISED_LISTENERS"], ",") {
		if _, hostport, ok := strings.Cut(l, "://"); ok {
			advertised[hostport] = true
		}
	}
	for _, name := range []string{"enricher", "generator"} {
		b := c.Services[name].Environment["ENRICHER_BROKERS"]
		if !advertised[b] || !strings.HasPrefix(b, "kafka:") {
			t.Errorf("%s: ENRICHER_BROKERS=%q is not an advertised in-network listener of kafka (%v)", name, b, advertised)
		}
		if _, ok := c.Services[name].DependsOn["topics"]; !ok {
			t.Errorf("%s does not wait for the topics", name)
		}
	}
	if !slices.Contains(publishedPorts(kafka), "9092") || !advertised["localhost:9092"] {
		t.Error("kafka is not reachable from the host on localhost:9092")
	}

	// The topics the processor uses are created before it starts.
	script := strings.Join(c.Services["topics"].Command, "\n")
	if !strings.Contains(script, "kafka:19092") || !advertised["kafka:19092"] {
		t.Errorf("topics service does not use kafka's in-network listener")
	}
	for _, k := range []string{"ENRICHER_INPUT_TOPIC", "ENRICHER_OUTPUT_TOPIC", "ENRICHER_DLQ_TOPIC"} {
		if !strings.Contains(script, " "+enr.Environment[k]+" ") && !strings.Contains(script, " "+enr.Environment[k]+";") {
			t.Errorf("topics service does not create %s=%q", k, enr.Environment[k])
		}
	}

	// The processor calls the simulator with the simulator's credentials.
	u, err := url.Parse(enr.Environment["ENRICHER_IM_BASE_URL"])
	if err != nil || u.Hostname() != "simulator" {
		t.Fatalf("ENRICHER_IM_BASE_URL=%q does not point at the simulator", enr.Environment["ENRICHER_IM_BASE_URL"])
	}
	if !slices.Contains(publishedPorts(sim), u.Port()) {
		t.Errorf("simulator does not expose port %s", u.Port())
	}
	for _, pair := range [][2]string{{"ENRICHER_IM_SDKAPPID", "SDKAPPID"}, {"ENRICHER_IM_ADMIN", "ADMIN"}, {envSecretKey, "SECRET_KEY"}} {
		var simVal string
		for k, v := range sim.Environment {
			if strings.HasSuffix(k, pair[1]) {
				simVal = v
			}
		}
		if enr.Environment[pair[0]] == "" || enr.Environment[pair[0]] != simVal {
			t.Errorf("%s=%q does not match the simulator's *%s=%q", pair[0], enr.Environment[pair[0]], pair[1], simVal)
		}
	}

	// The replicas share one budget and cache in the redis service, in one
	// group, each with the SDKAppID's whole rate (no hand split), and each
	// publishes its ops port on a host port of its own.
	rds := c.Services["redis"]
	if !strings.HasPrefix(rds.Image, "redis:") && !strings.HasPrefix(rds.Image, "valkey/valkey:") {
		t.Errorf("redis image %q", rds.Image)
	}
	hostPorts := map[string]bool{}
	for _, name := range []string{"enricher", "enricher-2"} {
		r := c.Services[name]
		if len(r.Command) == 0 || r.Command[0] != "run" {
			t.Errorf("%s: command %v, want run", name, r.Command)
		}
		ru, err := url.Parse(r.Environment["ENRICHER_REDIS_URL"])
		if err != nil || ru.Scheme != "redis" || ru.Hostname() != "redis" || ru.Port() != "6379" {
			t.Errorf("%s: ENRICHER_REDIS_URL=%q does not point at the redis service", name, r.Environment["ENRICHER_REDIS_URL"])
		}
		if _, ok := r.DependsOn["redis"]; !ok {
			t.Errorf("%s does not wait for redis", name)
		}
		if r.Environment["ENRICHER_GROUP"] != enr.Environment["ENRICHER_GROUP"] {
			t.Errorf("%s: group %q, want the same group as enricher", name, r.Environment["ENRICHER_GROUP"])
		}
		if rate := r.Environment["ENRICHER_API_RATE"]; rate != "" && rate != "200" {
			t.Errorf("%s: ENRICHER_API_RATE=%s: with a shared budget every replica gives the SDKAppID's rate", name, rate)
		}
		for _, p := range r.Ports {
			host, _, _ := strings.Cut(p, ":")
			if hostPorts[host] {
				t.Errorf("%s: host port %s published twice", name, host)
			}
			hostPorts[host] = true
		}
	}

	// /metrics is published on the configured port.
	_, port, err := net.SplitHostPort(enr.Environment["ENRICHER_HTTP_ADDR"])
	if err != nil || !slices.Contains(publishedPorts(enr), port) {
		t.Errorf("enricher: ENRICHER_HTTP_ADDR=%q not published (%v)", enr.Environment["ENRICHER_HTTP_ADDR"], enr.Ports)
	}

	// Traces go to Jaeger's OTLP endpoint, with a protocol matching the port.
	ep, err := url.Parse(enr.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
	if err != nil || ep.Hostname() != "jaeger" {
		t.Fatalf("OTEL_EXPORTER_OTLP_ENDPOINT=%q does not point at jaeger", enr.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
	}
	wantPort := map[string]string{"http/protobuf": "4318", "grpc": "4317"}[enr.Environment["OTEL_EXPORTER_OTLP_PROTOCOL"]]
	if ep.Port() != wantPort {
		t.Errorf("OTLP endpoint port %s does not match protocol %q", ep.Port(), enr.Environment["OTEL_EXPORTER_OTLP_PROTOCOL"])
	}
	if !slices.Contains(publishedPorts(jaeger), "16686") {
		t.Error("jaeger UI port 16686 not published")
	}
}

// mounts returns a service's bind mounts, container path -> repository path.
func mounts(t *testing.T, name string, s composeService) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], "./") {
			t.Errorf("%s: volume %q is not a bind mount of a repository path", name, v)
			continue
		}
		if _, err := os.Stat(filepath.Join("..", "..", parts[0])); err != nil {
			t.Errorf("%s: mounts %s, which does not exist: %v", name, parts[0], err)
		}
		if len(parts) == 3 && parts[2] != "ro" {
			t.Errorf("%s: %s is mounted %q, want read-only", name, parts[0], parts[2])
		}
		out[parts[1]] = parts[0]
	}
	return out
}

// inContainer maps a path inside a container to the repository path its
// mounts put there ("" when none does).
func inContainer(m map[string]string, path string) string {
	for target, src := range m {
		if path == target {
			return src
		}
		if rest, ok := strings.CutPrefix(path, target+"/"); ok {
			return src + "/" + rest
		}
	}
	return ""
}

// TestComposeMonitoring: Prometheus scrapes every enricher replica on its
// ops port and loads the alert rules; Grafana's provisioned datasource is
// that Prometheus and its dashboard provider finds the dashboard.
func TestComposeMonitoring(t *testing.T) {
	c := loadCompose(t)
	prom, graf := c.Services["prometheus"], c.Services["grafana"]
	if !strings.HasPrefix(prom.Image, "prom/prometheus:") || !strings.HasPrefix(graf.Image, "grafana/grafana") {
		t.Errorf("images %q, %q; want prom/prometheus and grafana/grafana", prom.Image, graf.Image)
	}

	pm := mounts(t, "prometheus", prom)
	configPath := "/etc/prometheus/prometheus.yml" // the image's default
	for _, a := range prom.Command {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			configPath = v
		}
	}
	src := inContainer(pm, configPath)
	if src == "" {
		t.Fatalf("prometheus: nothing mounted at its --config.file %s", configPath)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(repoFile(t, src), &cfg); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	if len(cfg.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
	for _, rf := range cfg.RuleFiles {
		if r := inContainer(pm, rf); r == "" || !strings.HasSuffix(r, ".rules.yml") {
			t.Errorf("rule_files %s: not mounted from a deploy/prometheus/*.rules.yml (got %q)", rf, r)
		}
	}
	targets := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s, the enricher serves /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = true
			}
		}
	}
	want := map[string]bool{}
	for name, s := range c.Services {
		if len(s.Command) == 0 || s.Command[0] != "run" {
			continue
		}
		_, port, err := net.SplitHostPort(s.Environment["ENRICHER_HTTP_ADDR"])
		if err != nil {
			t.Errorf("%s: ENRICHER_HTTP_ADDR=%q", name, s.Environment["ENRICHER_HTTP_ADDR"])
			continue
		}
		want[net.JoinHostPort(name, port)] = true
	}
	if len(want) < 2 || !maps.Equal(targets, want) {
		t.Errorf("prometheus scrapes %v, the enricher services serve /metrics on %v", slices.Sorted(maps.Keys(targets)), slices.Sorted(maps.Keys(want)))
	}
	if _, ok := prom.DependsOn["enricher"]; !ok {
		t.Error("prometheus does not start after the enricher")
	}

	gm := mounts(t, "grafana", graf)
	prov := inContainer(gm, "/etc/grafana/provisioning") // the image's GF_PATHS_PROVISIONING
	if prov == "" {
		t.Fatal("grafana: nothing mounted at /etc/grafana/provisioning")
	}
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(repoFile(t, prov+"/datasources/prometheus.yml"), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("grafana datasources %+v, want one prometheus", ds.Datasources)
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil || u.Hostname() != "prometheus" || u.Port() != "9090" || !slices.Contains(publishedPorts(prom), "9090") {
		t.Errorf("grafana datasource URL %q is not the prometheus service on its port 9090 (%v)", ds.Datasources[0].URL, prom.Ports)
	}
	var dash struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(repoFile(t, prov+"/dashboards/enricher.yml"), &dash); err != nil {
		t.Fatal(err)
	}
	if len(dash.Providers) == 0 {
		t.Fatal("grafana: no dashboard provider")
	}
	dir := inContainer(gm, dash.Providers[0].Options.Path)
	if dir == "" {
		t.Fatalf("grafana: nothing mounted at the provider's path %s", dash.Providers[0].Options.Path)
	}
	board := string(repoFile(t, dir+"/enricher.json"))
	uid := ds.Datasources[0].UID
	if !strings.Contains(board, `"uid": "`+uid+`"`) {
		t.Errorf("the dashboard does not use the provisioned datasource uid %q", uid)
	}
	if home := graf.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" && inContainer(gm, home) == "" {
		t.Errorf("grafana home dashboard %s is not mounted", home)
	}
}

func TestDockerfile(t *testing.T) {
	df := string(repoFile(t, "Dockerfile"))
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(from) < 2 {
		t.Fatalf("want a multi-stage build, got %d FROM lines", len(from))
	}
	final := from[len(from)-1][1]
	if !strings.Contains(final, "distroless") && final != "scratch" {
		t.Errorf("final stage %q is not distroless or scratch", final)
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/enricher"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(df)
	if user == nil || strings.HasPrefix(user[1], "root") || strings.HasPrefix(user[1], "0") {
		t.Errorf("Dockerfile does not switch to a non-root user: %v", user)
	}
}

// TestReadmeDocumentsConfiguration: every environment variable of `run` is
// in the README's configuration table.
func TestReadmeDocumentsConfiguration(t *testing.T) {
	readme := string(repoFile(t, "README.md"))
	for e := range commandEnv(newApp().Command("run")) {
		if !strings.Contains(readme, "`"+e+"`") {
			t.Errorf("README does not document %s", e)
		}
	}
}
