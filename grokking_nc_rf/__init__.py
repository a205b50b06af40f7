"""Grokking on modular addition: relative flatness, NCC and representativeness (Fig. 1, Fig. 8)."""
