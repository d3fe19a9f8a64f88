package processor

import (
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier adapts Kafka record headers to propagation.TextMapCarrier, so
// trace context (W3C traceparent, tracestate, baggage) travels in headers:
//
//	c := processor.HeaderCarrier(msg.Headers)
//	ctx = prop.Extract(ctx, &c)
//	...
//	prop.Inject(ctx, &c)
//	msg.Headers = c
//
// Header keys are compared exactly (propagators use lower-case keys). Not
// safe for concurrent use.
type HeaderCarrier []kafka.Header

var _ propagation.TextMapCarrier = (*HeaderCarrier)(nil)

// Get returns the value of the last header named key, or "".
func (c *HeaderCarrier) Get(key string) string {
	for i := len(*c) - 1; i >= 0; i-- {
		if (*c)[i].Key == key {
			return string((*c)[i].Value)
		}
	}
	return ""
}

// Set replaces every header named key with one carrying value.
func (c *HeaderCarrier) Set(key, value string) {
	h := (*c)[:0:0]
	for _, x := range *c {
		if x.Key != key {
			h = append(h, x)
		}
	}
	*c = append(h, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys returns the header names, each once.
func (c *HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(*c))
	seen := make(map[string]bool, len(*c))
	for _, h := range *c {
		if !seen[h.Key] {
			seen[h.Key] = true
			keys = append(keys, h.Key)
		}
	}
	return keys
}
