package wiring

import "fmt"

// UsageError marks a mistake in the command line or the config: the
// command exits with code 2.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Usagef formats a UsageError.
func Usagef(format string, args ...any) error { return UsageError{Msg: fmt.Sprintf(format, args...)} }

// Usage makes err a UsageError with the same message.
func Usage(err error) error { return UsageError{Msg: err.Error()} }
