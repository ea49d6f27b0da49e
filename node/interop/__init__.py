"""Interop: discovery (registry, mDNS, bootstrap, peer exchange); trust and federation come later."""
