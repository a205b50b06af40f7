"""NCC-regularised ResNet-18: neural collapse is not necessary for generalization (Figs. 2, 3, 5, 6, 7)."""
