package signals

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// LabelReader is what ConsumeLabels reads: a *kafka.Reader of the labels
// topic in a consumer group (built with the Kafka connection settings of
// the streaming path).
type LabelReader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// ConsumeLabels stores the labels of a Kafka topic until ctx is done. Each
// message is one labels request, the body of POST /v1/labels. A message is
// committed only once its labels are in ClickHouse (inserts are retried
// with backoff meanwhile), so none is lost; an invalid message is logged
// (without its content), counted in vigil_signals_labels_invalid_total and
// skipped. It returns nil when ctx is done.
func (w *Writer) ConsumeLabels(ctx context.Context, r LabelReader) error {
	backoff := time.Duration(0)
	// retry waits after a Kafka error (a broker restart, a coordinator
	// moving): they are transient, and must not stop vigil.
	retry := func(what string, err error) bool {
		backoff = min(max(2*backoff, w.minBackoff), w.maxBackoff)
		w.log.Warn("labels topic: "+what+" failed, retrying", "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) { // done, or the reader was closed
				return nil
			}
			if !retry("fetch", err) {
				return nil
			}
			continue
		}
		labels, err := DecodeLabels(msg.Value, time.Now())
		if err != nil {
			w.m.labelsInvalid.Inc()
			w.log.Error("labels topic: invalid message skipped", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "err", err)
		} else if !w.insertLabelsRetrying(ctx, labels, msg) {
			return nil
		}
		// A failed commit redelivers the message later: storing a label
		// twice is harmless (the latest label of an event wins).
		for {
			err := r.CommitMessages(ctx, msg)
			if err == nil {
				backoff = 0
				break
			}
			if ctx.Err() != nil || !retry("commit", err) {
				return nil
			}
		}
	}
}

// insertLabelsRetrying stores labels, retrying until it succeeds (true) or
// ctx is done (false).
func (w *Writer) insertLabelsRetrying(ctx context.Context, labels []Label, msg kafka.Message) bool {
	backoff := w.minBackoff
	for {
		err := w.InsertLabels(ctx, labels)
		if err == nil {
			return true
		}
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return false
		}
		w.log.Warn("labels topic: insert failed, retrying", "offset", msg.Offset, "labels", len(labels), "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return false
		}
		backoff = min(2*backoff, w.maxBackoff)
	}
}
