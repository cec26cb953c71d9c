"""alphaloop.agents"""
