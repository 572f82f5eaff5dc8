"""asgiserve's HTTP/1.1 server side: sans-IO wire rules, the shared request cycle and two parser adapters."""
