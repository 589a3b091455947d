"""The next-step predictor: heads (a frame's output distribution), network (NextStepModel, its
likelihood, sampling step and sizing), reference (the cells' equations written out, for tests).
"""
