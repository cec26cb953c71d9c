"""alphaloop.backtest"""
