//go:build !unix

package boltfile

import (
	"os"
	"time"
)

// lockShared takes no lock where flock is missing: the check may then read
// a file another process is writing, and bolt.Open's own lock still keeps
// two writers apart.
func lockShared(*os.File, time.Duration) error { return nil }

func unlock(*os.File) {}
