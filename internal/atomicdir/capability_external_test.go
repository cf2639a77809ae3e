package atomicdir_test

import (
	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

func init() { atomicdir.RequireCapability = testenv.RequireCapability }
