"""Generated from proto/posterior/v1 by scripts/gen_stubs.py: do not edit."""
