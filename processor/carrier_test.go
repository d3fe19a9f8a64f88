package processor

import (
	"context"
	"slices"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestHeaderCarrier(t *testing.T) {
	c := HeaderCarrier{{Key: "a", Value: []byte("1")}, {Key: "traceparent", Value: []byte("old")}, {Key: "a", Value: []byte("2")}}
	if got := c.Get("a"); got != "2" {
		t.Fatalf("Get(a) = %q, want the last value", got)
	}
	if got := c.Get("missing"); got != "" {
		t.Fatalf("Get(missing) = %q", got)
	}
	c.Set("traceparent", "new")
	if got := c.Get("traceparent"); got != "new" {
		t.Fatalf("after Set: %q", got)
	}
	n := 0
	for _, h := range c {
		if h.Key == "traceparent" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d traceparent headers after Set, want 1", n)
	}
	if keys := c.Keys(); !slices.Equal(keys, []string{"a", "traceparent"}) {
		t.Fatalf("Keys = %v", keys)
	}
}

func TestHeaderCarrierRoundTrip(t *testing.T) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	in := HeaderCarrier{{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}
	ctx := prop.Extract(context.Background(), &in)
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sc.IsRemote() {
		t.Fatalf("extracted %+v", sc)
	}
	out := HeaderCarrier([]kafka.Header{{Key: "k", Value: []byte("v")}})
	prop.Inject(ctx, &out)
	if got := out.Get("traceparent"); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("injected %q", got)
	}
	if out.Get("k") != "v" {
		t.Fatal("existing header lost")
	}
}
