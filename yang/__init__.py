"""YANG modules shipped with nfo, installed as package data."""
