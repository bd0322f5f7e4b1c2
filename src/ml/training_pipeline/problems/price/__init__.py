"""OHLCV problems: loading bars (minute to daily), features without look-ahead, the return,
direction and volatility targets with their baselines, several symbols in one model, and serving
a stored price model on a file.
"""
