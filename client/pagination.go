package client

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// GetAll returns the subscriber's complete list, following Next until
// CompleteFlag is 1. Each page is a GetPage call with its own retries, so
// every page counts against the rate limit. The walk fails with a
// *PaginationError (errors.Is ErrPagination) if the server has not completed
// after Config.MaxPages pages, repeats Next, or moves it backwards.
func (c *Client) GetAll(ctx context.Context, user string) (subs *Subscriptions, err error) {
	ctx, span := c.tel.tracer.Start(ctx, spanGetAll, trace.WithSpanKind(trace.SpanKindInternal))
	defer func() {
		if err != nil {
			_, _, class := outcomeAttrs(err)
			span.SetAttributes(attrClass.String(class.String()))
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attrPages.Int(subs.Pages), attrAccounts.Int(len(subs.Accounts)))
		}
		span.End()
	}()

	out := &Subscriptions{}
	var offset uint64
	for page := 1; ; page++ {
		if page > c.cfg.MaxPages {
			return nil, &PaginationError{Reason: "max pages", Pages: page - 1, Offset: offset, Next: offset}
		}
		p, err := c.getPage(ctx, PageRequest{SubscriberAccount: user, Offset: offset}, page)
		if err != nil {
			return nil, err
		}
		out.Accounts = append(out.Accounts, p.Accounts...)
		out.TotalCount = p.TotalCount
		out.Pages = page
		if p.CompleteFlag == 1 {
			return out, nil
		}
		switch {
		case p.Next == offset:
			return nil, &PaginationError{Reason: "repeated next", Pages: page, Offset: offset, Next: p.Next}
		case p.Next < offset:
			return nil, &PaginationError{Reason: "next went backwards", Pages: page, Offset: offset, Next: p.Next}
		}
		offset = p.Next
	}
}
