"""Kafka's wire protocol, sans I/O: generated message codecs (`_generated/`, from the schemas in
../shared/protocol-specs by tools/gen_kafka.py) and the hand-written helpers around them
(`codec.py`: header versions, zero-copy encoding)."""
