"""asgiserve's server process: configuration, the event-loop server with lifespan and drain, and prefork workers."""
