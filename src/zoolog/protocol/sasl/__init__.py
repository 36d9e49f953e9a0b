"""SASL mechanisms, server side, sans-I/O (the ZooKeeper client port's DIGEST-MD5)."""
