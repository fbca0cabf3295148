package testops

import (
	"fmt"
	"os"
)

// appendMarker appends "i\n" to the file at path, so a test can count which tasks
// ran, across processes.
func appendMarker(path string, i int) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%d\n", i)
	return err
}

// exitProcess ends the process abruptly, as an out-of-memory kill of a function
// would.
func exitProcess() { os.Exit(3) }
