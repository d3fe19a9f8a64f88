package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"
	"go.yaml.in/yaml/v3"

	"github.com/tencentchat-enricher/enricher/processor"
)

// No cluster here: these tests keep the Kubernetes base honest by checking
// it against the command's real flags, environment variables and ops
// endpoints, and by parsing the settings it gives each workload the way
// the command does. `.ci/run` also renders it with `kubectl kustomize`
// when kubectl is installed.

const k8sDir = "deploy/kubernetes"

type kustomization struct {
	Resources          []string `yaml:"resources"`
	ConfigMapGenerator []struct {
		Name     string   `yaml:"name"`
		Literals []string `yaml:"literals"`
	} `yaml:"configMapGenerator"`
	Images []struct {
		Name string `yaml:"name"`
	} `yaml:"images"`
}

// k8sObject holds the fields of the base's kinds these tests read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Suspend  bool `yaml:"suspend"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"` // Deployment, PodDisruptionBudget
		ServiceSelector map[string]string `yaml:"-"`
		MaxUnavailable  *int              `yaml:"maxUnavailable"`
		MinAvailable    *int              `yaml:"minAvailable"`
		Ports           []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"` // Service
		Template podTemplate `yaml:"template"`
	} `yaml:"spec"`
	StringData map[string]string `yaml:"stringData"` // Secret
}

type podTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		RestartPolicy                 string `yaml:"restartPolicy"`
		TerminationGracePeriodSeconds *int   `yaml:"terminationGracePeriodSeconds"`
		AutomountServiceAccountToken  *bool  `yaml:"automountServiceAccountToken"`
		SecurityContext               struct {
			RunAsNonRoot *bool `yaml:"runAsNonRoot"`
			RunAsUser    *int  `yaml:"runAsUser"`
		} `yaml:"securityContext"`
		Containers []k8sContainer `yaml:"containers"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name     string `yaml:"name"`
				Key      string `yaml:"key"`
				Optional bool   `yaml:"optional"`
			} `yaml:"secretKeyRef"`
			ResourceFieldRef *struct {
				Resource string `yaml:"resource"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// k8sBase is the parsed base: the objects by kind and name, the generated
// ConfigMaps' data and the example Secret.
type k8sBase struct {
	kust       kustomization
	objects    map[string]k8sObject // "Kind/name"
	configMaps map[string]map[string]string
	secret     k8sObject
}

func loadK8sDocs(t *testing.T, name string) []k8sObject {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(repoFile(t, filepath.Join(k8sDir, name))))
	var out []k8sObject
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var o k8sObject
		if err := node.Decode(&o); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o.Kind == "Service" { // a Service's selector is a plain map
			var svc struct {
				Spec struct {
					Selector map[string]string `yaml:"selector"`
				} `yaml:"spec"`
			}
			if err := node.Decode(&svc); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			o.Spec.ServiceSelector = svc.Spec.Selector
		}
		out = append(out, o)
	}
}

func loadK8s(t *testing.T) k8sBase {
	t.Helper()
	b := k8sBase{objects: map[string]k8sObject{}, configMaps: map[string]map[string]string{}}
	if err := yaml.Unmarshal(repoFile(t, filepath.Join(k8sDir, "kustomization.yaml")), &b.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	for _, r := range b.kust.Resources {
		for _, o := range loadK8sDocs(t, r) {
			b.objects[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	for _, g := range b.kust.ConfigMapGenerator {
		data := map[string]string{}
		for _, l := range g.Literals {
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Errorf("configMapGenerator %s: literal %q is not KEY=VALUE", g.Name, l)
			}
			data[k] = v
		}
		b.configMaps[g.Name] = data
	}
	docs := loadK8sDocs(t, "secret.example.yaml")
	if len(docs) != 1 || docs[0].Kind != "Secret" {
		t.Fatalf("secret.example.yaml: want one Secret, got %d documents", len(docs))
	}
	b.secret = docs[0]
	return b
}

// workload returns the single container of a Deployment or Job.
func (b k8sBase) workload(t *testing.T, kind, name string) (k8sObject, k8sContainer) {
	t.Helper()
	o, ok := b.objects[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s %q in the base (have %v)", kind, name, slices.Sorted(maps.Keys(b.objects)))
	}
	if n := len(o.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%s/%s: %d containers, want 1", kind, name, n)
	}
	return o, o.Spec.Template.Spec.Containers[0]
}

// env is the container's environment as the kubelet sets it: the
// ConfigMaps of envFrom, then env (placeholders for secrets and resource
// fields), with where each variable comes from.
func (b k8sBase) env(t *testing.T, c k8sContainer) (vars map[string]string, from map[string]string) {
	t.Helper()
	vars, from = map[string]string{}, map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			data, ok := b.configMaps[ef.ConfigMapRef.Name]
			if !ok {
				t.Errorf("%s: envFrom ConfigMap %q is not generated by kustomization.yaml", c.Name, ef.ConfigMapRef.Name)
			}
			for k, v := range data {
				vars[k], from[k] = v, "ConfigMap "+ef.ConfigMapRef.Name
			}
		case ef.SecretRef != nil:
			t.Errorf("%s: envFrom Secret %q: name the keys with secretKeyRef", c.Name, ef.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			vars[e.Name], from[e.Name] = e.Value, "env"
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != b.secret.Metadata.Name {
				t.Errorf("%s: %s reads Secret %q, secret.example.yaml shows %q", c.Name, e.Name, ref.Name, b.secret.Metadata.Name)
			}
			v, ok := b.secret.StringData[ref.Key]
			if !ok {
				t.Errorf("%s: %s reads key %q, which secret.example.yaml does not show", c.Name, e.Name, ref.Key)
			}
			vars[e.Name], from[e.Name] = v, "Secret "+ref.Name
		case e.ValueFrom.ResourceFieldRef != nil:
			vars[e.Name], from[e.Name] = "536870912", "resource "+e.ValueFrom.ResourceFieldRef.Resource
		default:
			t.Errorf("%s: %s: unexpected valueFrom", c.Name, e.Name)
		}
	}
	return vars, from
}

// runtimeEnv are variables read by the Go runtime or the OpenTelemetry SDK,
// not by a flag.
func runtimeEnv(name string) bool {
	return strings.HasPrefix(name, "OTEL_") || name == "GOMEMLIMIT" || name == "GOMAXPROCS" || name == "GOGC"
}

// checkCommand checks a container's command line and environment against
// the enricher subcommand it runs, and returns that subcommand.
func checkCommand(t *testing.T, b k8sBase, c k8sContainer, want string) *cli.Command {
	t.Helper()
	if len(c.Command) != 0 {
		t.Errorf("%s: command %v overrides the image's entrypoint; give the subcommand in args", c.Name, c.Command)
	}
	if len(c.Args) == 0 || c.Args[0] != want {
		t.Fatalf("%s: args %v, want the %q subcommand first", c.Name, c.Args, want)
	}
	if !slices.ContainsFunc(b.kust.Images, func(i struct {
		Name string `yaml:"name"`
	}) bool {
		return i.Name == c.Image
	}) {
		t.Errorf("%s: image %q is not set by kustomization.yaml's images", c.Name, c.Image)
	}
	sub := newApp().Command(want)
	for _, arg := range c.Args[1:] {
		flag, ok := strings.CutPrefix(arg, "--")
		if !ok {
			t.Errorf("%s: argument %q: give flags as --name=value", c.Name, arg)
			continue
		}
		flag, _, _ = strings.Cut(flag, "=")
		if !hasFlag(sub, flag) {
			t.Errorf("%s: --%s is not a flag of `enricher %s`", c.Name, flag, want)
		}
	}
	reads := commandEnv(sub)
	vars, from := b.env(t, c)
	for k := range vars {
		if !runtimeEnv(k) && !reads[k] {
			t.Errorf("%s: %s (from %s) is not read by `enricher %s`", c.Name, k, from[k], want)
		}
	}
	return sub
}

// parsesAs runs the subcommand's settings parser on the container's args
// and environment, as the process in the pod would, without running it.
func parsesAs(t *testing.T, b k8sBase, c k8sContainer, parse func(*cli.Command) error) {
	t.Helper()
	clearEnv(t)
	vars, _ := b.env(t, c)
	for k, v := range vars {
		if !runtimeEnv(k) {
			t.Setenv(k, v)
		}
	}
	app := newApp()
	sub := app.Command(c.Args[0])
	var parsed bool
	sub.Action = func(_ context.Context, cmd *cli.Command) error {
		parsed = true
		return parse(cmd)
	}
	var out, errb bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errb
	if err := app.Run(context.Background(), append([]string{"enricher"}, c.Args...)); err != nil || !parsed {
		t.Errorf("%s: `enricher %s` rejects the manifest's settings: %v %s", c.Name, strings.Join(c.Args, " "), err, errb.String())
	}
}

func TestKubernetesKustomization(t *testing.T) {
	b := loadK8s(t)
	if len(b.kust.Resources) == 0 {
		t.Fatal("kustomization.yaml lists no resources")
	}
	entries, err := os.ReadDir(filepath.Join("..", "..", k8sDir))
	if err != nil {
		t.Fatal(err)
	}
	// Every manifest is listed (loadK8s has read each listed file), except
	// the example Secret, which must not be.
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".yaml") || n == "kustomization.yaml" {
			continue
		}
		listed := slices.Contains(b.kust.Resources, n)
		if n == "secret.example.yaml" {
			if listed {
				t.Error("kustomization.yaml lists secret.example.yaml: the base would overwrite the real Secret with a placeholder")
			}
			continue
		}
		if !listed {
			t.Errorf("%s is not listed in kustomization.yaml's resources", n)
		}
	}
	for _, v := range b.secret.StringData {
		if !strings.HasPrefix(v, "REPLACE-") {
			t.Errorf("secret.example.yaml holds %q: only obvious placeholders belong there", v)
		}
	}
	for _, kind := range []string{"Deployment/enricher", "PodDisruptionBudget/enricher", "Job/enricher-replay", "Service/enricher-metrics"} {
		if _, ok := b.objects[kind]; !ok {
			t.Errorf("the base has no %s", kind)
		}
	}
}

func TestKubernetesDeployment(t *testing.T) {
	b := loadK8s(t)
	d, c := b.workload(t, "Deployment", "enricher")
	checkCommand(t, b, c, "run")
	vars, from := b.env(t, c)

	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("replicas %v, want at least 2", d.Spec.Replicas)
	}
	if !labelsMatch(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
		t.Errorf("selector %v does not select the pod labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
	}

	// The replicas share one budget and cache, each with the app's rate.
	for _, k := range []string{"ENRICHER_REDIS_URL", "ENRICHER_API_RATE", "ENRICHER_GROUP", "ENRICHER_BROKERS", "ENRICHER_IM_SDKAPPID", "ENRICHER_IM_ADMIN"} {
		if vars[k] == "" {
			t.Errorf("%s is not set", k)
		}
	}
	if vars["ENRICHER_IM_REGION"] == "" && vars["ENRICHER_IM_BASE_URL"] == "" {
		t.Error("neither ENRICHER_IM_REGION nor ENRICHER_IM_BASE_URL is set")
	}
	if !strings.HasPrefix(from[envSecretKey], "Secret ") {
		t.Errorf("%s comes from %q, want a Secret", envSecretKey, from[envSecretKey])
	}
	for k, f := range from {
		if strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") {
			if !strings.HasPrefix(f, "Secret ") && !strings.HasSuffix(k, "_FILE") {
				t.Errorf("%s comes from %s, not from a Secret", k, f)
			}
		}
	}

	// The probes hit the ops server's real endpoints on the port it listens on.
	_, port, err := net.SplitHostPort(vars["ENRICHER_HTTP_ADDR"])
	if err != nil {
		t.Fatalf("ENRICHER_HTTP_ADDR=%q: %v", vars["ENRICHER_HTTP_ADDR"], err)
	}
	probes := map[string]*k8sProbe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe}
	wantPath := map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no %s httpGet", name)
			continue
		}
		if p.HTTPGet.Path != wantPath[name] {
			t.Errorf("%s path %q, want %s", name, p.HTTPGet.Path, wantPath[name])
		}
		if got := containerPort(c, p.HTTPGet.Port); got != port {
			t.Errorf("%s port %q is container port %q, the ops server listens on %s", name, p.HTTPGet.Port, got, port)
		}
		if code := opsStatus(t, p.HTTPGet.Path); code != http.StatusOK {
			t.Errorf("%s: the ops server answers %s with %d", name, p.HTTPGet.Path, code)
		}
	}

	// The kubelet waits longer than the process's own shutdown bound.
	shutdown := processor.DefaultShutdownTimeout
	if v := vars["ENRICHER_SHUTDOWN_TIMEOUT"]; v != "" {
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds is not above --shutdown-timeout %s", shutdown)
	}
	checkPodHardening(t, d.Spec.Template, c)

	parsesAs(t, b, c, func(cmd *cli.Command) error { _, err := parseRun(cmd); return err })
}

func TestKubernetesDisruptionBudgetAndService(t *testing.T) {
	b := loadK8s(t)
	d, c := b.workload(t, "Deployment", "enricher")
	job, _ := b.workload(t, "Job", "enricher-replay")
	pods := d.Spec.Template.Metadata.Labels

	pdb := b.objects["PodDisruptionBudget/enricher"]
	if !labelsMatch(pdb.Spec.Selector.MatchLabels, pods) {
		t.Errorf("PodDisruptionBudget selector %v does not select the processor pods %v", pdb.Spec.Selector.MatchLabels, pods)
	}
	if labelsMatch(pdb.Spec.Selector.MatchLabels, job.Spec.Template.Metadata.Labels) {
		t.Error("PodDisruptionBudget also selects the replay Job's pods")
	}
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		if *pdb.Spec.MaxUnavailable < 1 || *pdb.Spec.MaxUnavailable >= *d.Spec.Replicas {
			t.Errorf("maxUnavailable %d with %d replicas", *pdb.Spec.MaxUnavailable, *d.Spec.Replicas)
		}
	case pdb.Spec.MinAvailable != nil:
		if *pdb.Spec.MinAvailable >= *d.Spec.Replicas {
			t.Errorf("minAvailable %d with %d replicas blocks every drain", *pdb.Spec.MinAvailable, *d.Spec.Replicas)
		}
	default:
		t.Error("PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
	}

	svc := b.objects["Service/enricher-metrics"]
	if !labelsMatch(svc.Spec.ServiceSelector, pods) || labelsMatch(svc.Spec.ServiceSelector, job.Spec.Template.Metadata.Labels) {
		t.Errorf("Service selector %v does not select exactly the processor pods", svc.Spec.ServiceSelector)
	}
	vars, _ := b.env(t, c)
	_, port, _ := net.SplitHostPort(vars["ENRICHER_HTTP_ADDR"])
	if len(svc.Spec.Ports) == 0 {
		t.Fatal("Service has no ports")
	}
	for _, p := range svc.Spec.Ports {
		if got := containerPort(c, p.TargetPort); got != port {
			t.Errorf("Service port %s targets %q (container port %q), the ops server listens on %s", p.Name, p.TargetPort, got, port)
		}
	}
	if code := opsStatus(t, "/metrics"); code != http.StatusOK {
		t.Errorf("the ops server answers /metrics with %d", code)
	}
}

func TestKubernetesReplayJob(t *testing.T) {
	b := loadK8s(t)
	job, c := b.workload(t, "Job", "enricher-replay")
	checkCommand(t, b, c, "replay")
	if !job.Spec.Suspend {
		t.Error("the replay Job is not suspended: applying the base would start a replay")
	}
	// The replay checkpoints in Kafka: a restarted pod resumes.
	if rp := job.Spec.Template.Spec.RestartPolicy; rp != "OnFailure" {
		t.Errorf("restartPolicy %q, want OnFailure", rp)
	}
	vars, _ := b.env(t, c)
	if vars["ENRICHER_REDIS_URL"] == "" {
		t.Error("the replay does not share the live replicas' budget (ENRICHER_REDIS_URL)")
	}
	_, live := b.workload(t, "Deployment", "enricher")
	liveVars, _ := b.env(t, live)
	for _, k := range []string{"ENRICHER_BROKERS", "ENRICHER_INPUT_TOPIC", "ENRICHER_REDIS_URL", "ENRICHER_IM_SDKAPPID", "ENRICHER_API_RATE"} {
		if vars[k] != liveVars[k] {
			t.Errorf("%s: replay %q, live %q", k, vars[k], liveVars[k])
		}
	}
	checkPodHardening(t, job.Spec.Template, c)

	parsesAs(t, b, c, func(cmd *cli.Command) error {
		s, err := parseReplay(cmd)
		if err != nil {
			return err
		}
		// Never the live topics or group.
		for _, pair := range [][2]string{
			{s.Pipeline.OutputTopic, liveVars["ENRICHER_OUTPUT_TOPIC"]},
			{s.Pipeline.DLQTopic, liveVars["ENRICHER_DLQ_TOPIC"]},
			{s.Pipeline.Group, liveVars["ENRICHER_GROUP"]},
		} {
			if pair[0] == pair[1] {
				t.Errorf("the replay writes to or commits in the live %q", pair[0])
			}
		}
		if s.Range.From.IsZero() && s.Range.Offsets == nil {
			t.Error("the replay Job gives no range")
		}
		return nil
	})
}

// checkPodHardening: non-root, read-only root filesystem, no privilege
// escalation, no capabilities, no service-account token, requests and limits.
func checkPodHardening(t *testing.T, pod podTemplate, c k8sContainer) {
	t.Helper()
	sc := pod.Spec.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || (sc.RunAsUser != nil && *sc.RunAsUser == 0) {
		t.Errorf("%s: pod does not run as non-root", c.Name)
	}
	if a := pod.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Errorf("%s: the service-account token is mounted; the enricher does not talk to the API server", c.Name)
	}
	csc := c.SecurityContext
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem is writable", c.Name)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("%s: privilege escalation allowed", c.Name)
	}
	if !slices.Contains(csc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: capabilities not dropped", c.Name)
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("%s: no %s request", c.Name, r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Errorf("%s: no memory limit", c.Name)
	}
}

// containerPort resolves a probe or Service port (a name or a number) to
// the container's port number.
func containerPort(c k8sContainer, port string) string {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(p.ContainerPort) == port {
			return strconv.Itoa(p.ContainerPort)
		}
	}
	return ""
}

// opsStatus is the status the ops server, as `run` builds it (without
// readiness checks), answers for a GET of path.
func opsStatus(t *testing.T, path string) int {
	t.Helper()
	prov, err := newTelemetry(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer prov.Shutdown(context.Background())
	srv, err := startOps(opsSettings{HTTPAddr: "127.0.0.1:0"}, prov, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code
}

// labelsMatch reports whether every selector label is among labels.
func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
