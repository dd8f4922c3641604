"""One nn.Module per method: forward(...) -> (loss, metrics dict)."""
