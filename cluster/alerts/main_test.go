package alerts

import (
	"testing"

	"go.uber.org/goleak"
)

// Alert scripts run in goroutines of their own: none may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
