"""tailface.eval"""
