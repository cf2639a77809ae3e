package atomicdir_test

import (
	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/testenv"
)

func init() { atomicdir.RequireCapability = testenv.RequireCapability }
