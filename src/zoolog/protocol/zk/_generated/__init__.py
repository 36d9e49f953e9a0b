"""Code generated from ../shared/protocol-specs; do not edit."""
