package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/devkafka"
	"github.com/tencentchat-enricher/enricher/internal/eventgen"
	"github.com/tencentchat-enricher/enricher/internal/redistest"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runStack is a broker with generated events and a simulator, for `run`.
type runStack struct {
	broker  *devkafka.Broker
	sim     *simulator.Server
	valid   int
	invalid int
}

// startBrokerAndSimulator starts an embedded broker with the topics and a
// simulator with the test credentials; both stop when the test ends.
func startBrokerAndSimulator(t *testing.T, partitions int, topics ...string) (*devkafka.Broker, *simulator.Server) {
	t.Helper()
	b, err := devkafka.Start(devkafka.Config{Partitions: partitions, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	sim, err := simulator.NewServer(simulator.Config{SDKAppID: devSDKAppID, Admin: devAdmin, SecretKey: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return b, sim
}

// env clears the environment and points `enricher run` at the stack, its
// ops server at httpAddr, as a deployment configures it.
func (s *runStack) env(t *testing.T, httpAddr string) {
	t.Helper()
	clearEnv(t)
	t.Setenv("ENRICHER_BROKERS", s.broker.Addr())
	t.Setenv("ENRICHER_IM_BASE_URL", s.sim.URL())
	t.Setenv("ENRICHER_IM_SDKAPPID", "1400000001")
	t.Setenv("ENRICHER_IM_ADMIN", "administrator")
	t.Setenv(envSecretKey, testSecret)
	t.Setenv("ENRICHER_HTTP_ADDR", httpAddr)
}

func newRunStack(t *testing.T, events, users int) *runStack {
	t.Helper()
	b, sim := startBrokerAndSimulator(t, 3, defaultInputTopic, defaultOutputTopic, defaultDLQTopic)

	g, err := eventgen.New(eventgen.Config{Seed: 4, Users: users, MalformedShare: 0.1, Rate: 1e5, Count: events, UserID: simulator.UserID})
	if err != nil {
		t.Fatal(err)
	}
	w := newEventWriter(kafkaSettings{Brokers: []string{b.Addr()}}, defaultInputTopic)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Run(ctx, w); err != nil {
		t.Fatal(err)
	}
	st := g.Stats()
	return &runStack{broker: b, sim: sim, valid: int(st.Sent - st.Malformed), invalid: int(st.Malformed)}
}

// topicEnd returns the sum of the topic's partition end offsets.
func topicEnd(t *testing.T, addr, topic string) int {
	t.Helper()
	n := topicRecords(context.Background(), addr, topic)
	return int(n)
}

func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestRunEndToEnd runs `enricher run` in-process against a broker and the
// simulator, configured from the environment the way a deployment is.
func TestRunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the processor")
	}
	st := newRunStack(t, 200, 50)
	httpAddr := freeAddr(t)
	st.env(t, httpAddr)
	// Traces go to an OTLP/HTTP receiver, as they go to Jaeger in docker-compose.
	var traceMu sync.Mutex
	var traceBodies []byte
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" {
			traceMu.Lock()
			traceBodies = append(traceBodies, b...)
			traceMu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer otlp.Close()
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "enricher-e2e")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testsupport.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"enricher", "run", "--log-level", "debug"}, &out, &errb) }()

	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		outN, dlqN := topicEnd(t, st.broker.Addr(), defaultOutputTopic), topicEnd(t, st.broker.Addr(), defaultDLQTopic)
		code, body, _ := httpGet("http://" + httpAddr + "/readyz")
		if outN == st.valid && dlqN == st.invalid && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: out %d/%d, dlq %d/%d, readyz %d %q\nstderr:\n%s", outN, st.valid, dlqN, st.invalid, code, body, errb.String())
		}
		select {
		case c := <-done:
			t.Fatalf("run exited with %d before finishing\n%s", c, errb.String())
		case <-tick.C:
		}
	}
	code, metrics, err := httpGet("http://" + httpAddr + "/metrics")
	if err != nil || code != http.StatusOK || !strings.Contains(metrics, "enricher_records_out_total") || !strings.Contains(metrics, "tencentchat_client_calls_total") {
		t.Errorf("/metrics: %d %v; processor or client metrics missing", code, err)
	}

	// One enriched record is a real enrichment of a generated user.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{st.broker.Addr()}, Topic: defaultOutputTopic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	m, err := r.ReadMessage(rctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m.Value), `"enrichment":{`) || !strings.HasPrefix(string(m.Key), "user-") {
		t.Errorf("output record: key %q value %.200s", m.Key, m.Value)
	}

	cancel()
	select {
	case c := <-done:
		if c != 0 {
			t.Errorf("exit code %d after interrupt\n%s", c, errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not stop within 60s")
	}
	if strings.Contains(out.String()+errb.String(), testSecret) {
		t.Error("the secret key appears in the output")
	}
	// Spans were flushed on shutdown (OTLP protobuf carries names as raw bytes).
	traceMu.Lock()
	defer traceMu.Unlock()
	for _, want := range []string{"enricher-e2e", "process " + defaultInputTopic, "enrich", "tencentchat.attempt", "send " + defaultOutputTopic} {
		if !bytes.Contains(traceBodies, []byte(want)) {
			t.Errorf("exported traces lack %q (%d bytes received)", want, len(traceBodies))
		}
	}
	if bytes.Contains(traceBodies, []byte(testSecret)) {
		t.Error("the secret key appears in the exported spans")
	}
}

// TestRunWrongSecretIsFatal: a key the API rejects stops the processor with
// exit code 1 and a message naming what to fix, without printing the key.
func TestRunWrongSecretIsFatal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the processor")
	}
	st := newRunStack(t, 20, 50)
	clearEnv(t)
	const wrong = "wrong-key-sentinel-51c3"
	t.Setenv("ENRICHER_BROKERS", st.broker.Addr())
	t.Setenv("ENRICHER_IM_BASE_URL", st.sim.URL())
	t.Setenv("ENRICHER_IM_SDKAPPID", "1400000001")
	t.Setenv("ENRICHER_IM_ADMIN", "administrator")
	t.Setenv(envSecretKey, wrong)
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, stdout, stderr := runApp(t, ctx, "run", "--http-addr", "", "--log-level", "error")
	if ctx.Err() != nil {
		t.Fatalf("run did not stop on a rejected key\n%s", stderr)
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "enricher: ") || !strings.Contains(strings.ToLower(last), "secret") {
		t.Errorf("last line should name the secret key setting, got %q", last)
	}
	if strings.Contains(stdout+stderr, wrong) {
		t.Error("the secret key appears in the output")
	}
	if n := topicEnd(t, st.broker.Addr(), defaultOutputTopic); n != 0 {
		t.Errorf("%d records published with a rejected key", n)
	}
}

func TestGenerateCommand(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{Partitions: 2, Topics: []string{"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	clearEnv(t)
	t.Setenv("ENRICHER_BROKERS", b.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, _, stderr := runApp(t, ctx, "generate", "--input-topic", "demo", "--count", "30", "--rate", "1000", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	if n := topicEnd(t, b.Addr(), "demo"); n != 30 {
		t.Errorf("topic holds %d events, want 30", n)
	}
}

// readAll returns every record of the topic, read up to the end offsets.
func readAll(t *testing.T, addr, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parts, err := (&kafka.Dialer{}).LookupPartitions(ctx, "tcp", addr, topic)
	if err != nil {
		t.Fatal(err)
	}
	var all []kafka.Message
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.ID, MaxWait: 50 * time.Millisecond})
		for {
			lag, err := r.ReadLag(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if lag == 0 {
				break
			}
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, m)
		}
		r.Close()
	}
	return all
}

// enrichedInputs returns the input records (partition/offset) that the
// output topic holds an enriched record of.
func enrichedInputs(t *testing.T, addr string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range readAll(t, addr, defaultOutputTopic) {
		var rec struct {
			Source struct {
				Partition int   `json:"partition"`
				Offset    int64 `json:"offset"`
			} `json:"source"`
		}
		if err := json.Unmarshal(m.Value, &rec); err != nil {
			t.Fatal(err)
		}
		seen[fmt.Sprint(rec.Source.Partition, "/", rec.Source.Offset)] = true
	}
	return seen
}

// TestRunScaleOut runs two instances in one group, each with half the API
// budget, as the README describes: together they enrich every event, and the
// API never sees more than 200 calls in a second.
func TestRunScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two processors")
	}
	runScaleOut(t, map[string]string{"ENRICHER_API_RATE": "100"})
}

// TestRunScaleOutSharedBudget runs two instances with the default
// --api-rate and one shared budget in Redis (no hand split): together they
// stay within the API's 200 calls per trailing second, and none of their
// calls is refused.
func TestRunScaleOutSharedBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two processors")
	}
	rs := redistest.Start(t)
	sim := runScaleOut(t, map[string]string{"ENRICHER_REDIS_URL": "redis://" + rs.Addr() + "/0"})
	if n := sim.Stats().ByCode[client.CodeFrequencyLimit]; n != 0 {
		t.Errorf("%d frequency-limit answers with a shared budget", n)
	}
	keys, err := rs.Client().Keys(context.Background(), "enricher:budget:1400000001*").Result()
	if err != nil || len(keys) == 0 {
		t.Errorf("no shared budget in Redis: keys %v, %v", keys, err)
	}
}

// runScaleOut runs two `enricher run` in one group with env over the test
// settings until every event is enriched, and returns the simulator.
func runScaleOut(t *testing.T, env map[string]string) *simulator.Server {
	t.Helper()
	st := newRunStack(t, 1500, 1000)
	clearEnv(t)
	t.Setenv("ENRICHER_BROKERS", st.broker.Addr())
	t.Setenv("ENRICHER_IM_BASE_URL", st.sim.URL())
	t.Setenv("ENRICHER_IM_SDKAPPID", "1400000001")
	t.Setenv("ENRICHER_IM_ADMIN", "administrator")
	t.Setenv(envSecretKey, testSecret)
	t.Setenv("ENRICHER_HTTP_ADDR", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	for k, v := range env {
		t.Setenv(k, v)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs [2]testsupport.SyncBuffer
	done := make(chan int, 2)
	for i := range logs {
		go func() { done <- run(ctx, []string{"enricher", "run", "--cache-size", "1"}, io.Discard, &logs[i]) }()
	}
	deadline := time.Now().Add(90 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	// Until every input is enriched: the output may hold duplicates (a
	// rebalance while the second instance joins), so its size alone does
	// not say.
	for topicEnd(t, st.broker.Addr(), defaultOutputTopic) < st.valid || len(enrichedInputs(t, st.broker.Addr())) < st.valid {
		if time.Now().After(deadline) {
			t.Fatalf("after 90s only %d of %d records enriched\n%s\n%s", len(enrichedInputs(t, st.broker.Addr())), st.valid, logs[0].String(), logs[1].String())
		}
		select {
		case c := <-done:
			t.Fatalf("an instance exited with %d\n%s\n%s", c, logs[0].String(), logs[1].String())
		case <-tick.C:
		}
	}
	cancel()
	for range logs {
		if c := <-done; c != 0 {
			t.Errorf("exit code %d", c)
		}
	}

	// At-least-once: every input offset is enriched, duplicates allowed.
	if seen := enrichedInputs(t, st.broker.Addr()); len(seen) != st.valid {
		t.Errorf("%d distinct inputs enriched, want %d", len(seen), st.valid)
	}
	s := st.sim.Stats()
	t.Logf("%d API calls, at most %d in a second", s.Total, s.MaxPerSecond)
	if s.MaxPerSecond > 200 {
		t.Errorf("the API saw %d calls in one second; the instances' budget is 200", s.MaxPerSecond)
	}
	// With a one-entry cache nearly every user change is a lookup; the
	// records of a user queued behind its lookup share the cached entry
	// (they are published together), so calls are fewer than events.
	if s.Total < st.valid/4 {
		t.Errorf("only %d API calls for %d events with a one-entry cache: the test does not load the API", s.Total, st.valid)
	}
	for i := range logs {
		if !strings.Contains(logs[i].String(), "partitions assigned") {
			t.Errorf("instance %d never got partitions:\n%s", i, logs[i].String())
		}
	}
	return st.sim
}

// TestRunUnreachableBrokers: while no broker answers, run logs one line
// naming --brokers per brokerWarnEvery (not a warning per retry), and
// /readyz fails consumer-group with the last failure to join, naming the
// brokers, while the partitions check passes (nothing fetched, nothing
// stalled).
func TestRunUnreachableBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the processor")
	}
	old := brokerWarnEvery
	brokerWarnEvery = 100 * time.Millisecond
	t.Cleanup(func() { brokerWarnEvery = old })
	clearEnv(t)
	dead := freeAddr(t) // nothing listens there
	httpAddr := freeAddr(t)
	t.Setenv("ENRICHER_BROKERS", dead)
	t.Setenv("ENRICHER_IM_BASE_URL", "http://"+freeAddr(t))
	t.Setenv("ENRICHER_IM_SDKAPPID", "1400000001")
	t.Setenv("ENRICHER_IM_ADMIN", "administrator")
	t.Setenv(envSecretKey, testSecret)
	t.Setenv("ENRICHER_HTTP_ADDR", httpAddr)
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testsupport.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"enricher", "run", "--log-level", "warn"}, &out, &errb) }()

	const brokersLine = "cannot reach any Kafka broker: check --brokers (ENRICHER_BROKERS)"
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var body string
	for {
		var code int
		code, body, _ = httpGet("http://" + httpAddr + "/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "cannot join the group through brokers") &&
			strings.Count(errb.String(), brokersLine) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: readyz %d %q\nstderr:\n%s", code, body, errb.String())
		}
		select {
		case c := <-done:
			t.Fatalf("run exited with %d while the brokers were unreachable\n%s", c, errb.String())
		case <-tick.C:
		}
	}
	if !strings.Contains(body, "fail consumer-group: not joined: cannot join the group through brokers ["+dead+"]") ||
		!strings.Contains(body, "ok partitions") || !strings.Contains(body, "fail kafka") {
		t.Errorf("/readyz body:\n%s", body)
	}
	logs := errb.String()
	// kafka-go retries the join every second; its failures are warned at
	// most every joinWarnEvery (30s), so once within this test.
	if n := strings.Count(logs, "cannot join the consumer group"); n > 1 {
		t.Errorf("%d join warnings, want at most 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, "brokers="+dead) {
		t.Errorf("the brokers line does not list the brokers:\n%s", logs)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("run did not stop within 60s")
	}
}
