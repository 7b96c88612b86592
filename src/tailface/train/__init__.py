"""tailface.train"""
