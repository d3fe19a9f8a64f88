package processor

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// spanNames holds span names made of a prefix and a topic ("process
// user-events"), built once per pair rather than per record. Safe for
// concurrent use; the zero value is ready.
type spanNames struct {
	mu sync.Mutex
	m  atomic.Pointer[map[[2]string]string] // copied on write
}

func (s *spanNames) get(prefix, topic string) string {
	k := [2]string{prefix, topic}
	if m := s.m.Load(); m != nil {
		if name, ok := (*m)[k]; ok {
			return name
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	next := make(map[[2]string]string, 4)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	name := prefix + topic
	next[k] = name
	s.m.Store(&next)
	return name
}

// Span kinds as start options, built once.
var (
	spanConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
	spanProducer = trace.WithSpanKind(trace.SpanKindProducer)
	spanInternal = trace.WithSpanKind(trace.SpanKindInternal)
)
