package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// Fetcher is what the processor needs from the Tencent Chat client: every
// subscription of one user, all pages. *client.Client implements it. It
// must be safe for concurrent use; the processor calls it from many
// goroutines and relies on it for rate limiting, retries and the breaker.
type Fetcher interface {
	GetAll(ctx context.Context, user string) (*client.Subscriptions, error)
}

// NewPipeline returns a pipeline enriching with f and publishing with a
// kafka-go writer to cfg.Brokers; Sources feed it (see Source).
func NewPipeline(cfg Config, f Fetcher) (*Pipeline, error) {
	if f == nil {
		return nil, fmt.Errorf("%w: nil Fetcher", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return newPipeline(cfg, fetcherLookup(f, cfg.Now), newWriter(cfg))
}

// New returns a processor enriching with f, fed by the consumer group
// Config.Group.
func New(cfg Config, f Fetcher) (*Processor, error) {
	if f == nil {
		return nil, fmt.Errorf("%w: nil Fetcher", ErrConfig)
	}
	return newProcessor(cfg, func(c Config) lookupFunc { return fetcherLookup(f, c.Now) })
}

// breakerStater is implemented by fetchers with a circuit breaker, such as
// *client.Client: a failed lookup with the breaker open afterwards is part
// of an outage of the whole API.
type breakerStater interface {
	BreakerState() client.BreakerState
}

// fetcherLookup maps the client's answers to lookups: subscriptions → ok;
// the per-record codes of the status table → user_not_found / invalid_user;
// other per-record failures → enrichError (DLQ); app-fatal → *FatalError;
// everything the client gave up retrying (transient, throttled, breaker
// open) → unavailableError, marked as an outage when the breaker refused
// the call or is open after it.
func fetcherLookup(f Fetcher, now func() time.Time) lookupFunc {
	return func(ctx context.Context, user string) (lookup, error) {
		subs, err := f.GetAll(ctx, user)
		if err == nil {
			return lookup{
				status:    schemas.StatusOK,
				accounts:  subs.Accounts,
				total:     subs.TotalCount,
				complete:  true,
				fetchedAt: now(),
			}, nil
		}
		var apiErr *client.APIError
		errors.As(err, &apiErr)
		switch client.Classify(err) {
		case client.ClassPermanent:
			if apiErr != nil {
				switch apiErr.Code {
				case client.CodeUserNotFound:
					return lookup{status: schemas.StatusUserNotFound, complete: true, fetchedAt: now()}, nil
				case client.CodeInvalidUserID, client.CodeInvalidParameter, client.CodeInvalidPacket:
					return lookup{status: schemas.StatusInvalidUser, complete: true, fetchedAt: now()}, nil
				}
				return lookup{}, &enrichError{code: apiErr.Code, err: err}
			}
			return lookup{}, &enrichError{err: err}
		case client.ClassFatal:
			fe := &FatalError{Setting: fatalSetting(apiErr), Err: err}
			if apiErr != nil {
				fe.Code, fe.HTTPStatus = apiErr.Code, apiErr.HTTPStatus
			}
			return lookup{}, fe
		case client.ClassCanceled:
			if ctx.Err() != nil {
				return lookup{}, ctx.Err()
			}
		}
		ue := &unavailableError{err: err}
		if d, ok := client.RetryAfter(err); ok {
			ue.retryAfter = d
		}
		if errors.Is(err, client.ErrHoldOff) {
			ue.outage = true
		} else if bs, ok := f.(breakerStater); ok && bs.BreakerState() == client.BreakerOpen {
			ue.outage = true
		}
		return lookup{}, ue
	}
}

// fatalSetting names the configuration to fix for an app-fatal answer.
func fatalSetting(e *client.APIError) string {
	if e == nil {
		return "the API client configuration"
	}
	return e.Hint()
}
