"""Networks only: pure nn.Modules with no I/O and no device logic."""
