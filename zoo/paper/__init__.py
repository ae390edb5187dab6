"""The paper's experiments: Table 6 regenerated, and the degradation experiment (Figure 6)."""
