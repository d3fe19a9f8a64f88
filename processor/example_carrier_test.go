package processor_test

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tencentchat-enricher/enricher/processor"
)

// Trace context travels in Kafka headers through HeaderCarrier.
func ExampleHeaderCarrier() {
	prop := propagation.TraceContext{}
	in := kafka.Message{Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}}
	ctx := prop.Extract(context.Background(), (*processor.HeaderCarrier)(&in.Headers))
	fmt.Println(trace.SpanContextFromContext(ctx).TraceID())

	out := kafka.Message{Headers: []kafka.Header{{Key: "origin", Value: []byte("web")}}}
	prop.Inject(ctx, (*processor.HeaderCarrier)(&out.Headers))
	for _, h := range out.Headers {
		fmt.Printf("%s=%s\n", h.Key, h.Value)
	}
	// Output:
	// 4bf92f3577b34da6a3ce929d0e0e4736
	// origin=web
	// traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
}
