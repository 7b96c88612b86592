"""tailface.method"""
