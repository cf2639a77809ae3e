package agent

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/ssinjector/ssi/internal/logging"
)

// newLogger is the logger of `ssi-agent run`, from the agent
// configuration's logFormat and logLevel (the webhook's --agent-log-format
// and --agent-log-level); `ssi-agent fetch` takes them from its flags.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	log, err := logging.New(w, level, format)
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	return log, nil
}
