package operators

// Services are the run's shared stores as a task sees them. The blob store and the
// psstore client join this interface when those packages land.
type Services interface{}
