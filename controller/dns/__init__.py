"""DNS in the controller: hostnames of InferencePool members are resolved here, never on the data path."""

from controller.dns.resolver import DnsResolver, parse_nameserver

__all__ = ["DnsResolver", "parse_nameserver"]
