package telemetry

import (
	"context"
	"log/slog"
)

// Start is Setup for a command's main. Tracing must never keep a node from running,
// so a setup error is logged and the command goes on untraced. It returns o.Logger
// (or a discarding logger) wrapped to carry trace ids, and stop, which flushes and
// shuts the provider down within a few seconds; call it once at exit.
func Start(ctx context.Context, o Options) (log *slog.Logger, stop func()) {
	log = o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = WithTraceIDs(log)
	o.Logger = log
	shutdown, err := Setup(ctx, o)
	if err != nil {
		log.Error("tracing not started; running without it", "err", err)
		return log, func() {}
	}
	return log, func() {
		if err := shutdown(context.Background()); err != nil {
			log.Warn("tracing did not shut down cleanly", "err", err)
		}
	}
}
