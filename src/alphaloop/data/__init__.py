"""alphaloop.data"""
