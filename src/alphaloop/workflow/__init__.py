"""alphaloop.workflow"""
